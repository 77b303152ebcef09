// Command argocd-lua-health runs Argo CD resource health scripts against their
// test cases, with the interpreter Argo CD embeds (github.com/yuin/gopher-lua).
//
// Usage: argocd-lua-health DIR...
//
// Each DIR holds a health.lua and a health_test.yaml in Argo CD's
// resource_customizations test format:
//
//	tests:
//	  - healthStatus: {status: Healthy, message: "..."}
//	    inputPath: testdata/healthy.yaml
//
// Every case's input is decoded the way Argo CD decodes a live object for its
// scripts: YAML to JSON (sigs.k8s.io/yaml), JSON objects to Lua tables keyed
// by string, arrays to sequences, numbers to Lua numbers, null to nil. The
// script runs as a custom health check runs in argocd-cm (no
// resource.customizations.useOpenLibs): only the base, package and table
// libraries and os.time/os.date, with a one-second time limit. Its returned
// table's status and message must equal the expected ones exactly; a status
// Argo CD does not know becomes Unknown with Argo CD's message for it.
//
// The command exits 1 when any case fails. It is built and run by
// `cargo xtask test` (xtask/src/testenv/build.rs, xtask/src/test.rs).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// healthStatus is the part of Argo CD's health.HealthStatus a script sets.
type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type testCase struct {
	HealthStatus healthStatus `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

type testFile struct {
	Tests []testCase `json:"tests"`
}

// The statuses Argo CD accepts from a script.
var validStatuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

const invalidHealthStatus = "Lua returned an invalid health status"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua-health DIR...")
		os.Exit(2)
	}
	passed, failed := 0, 0
	for _, dir := range os.Args[1:] {
		p, f, err := runDir(dir)
		passed += p
		failed += f
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", dir, err)
			failed++
		}
	}
	fmt.Printf("argocd health cases: %d match, %d do not\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func runDir(dir string) (passed, failed int, err error) {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return 0, 0, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		return 0, 0, err
	}
	var tests testFile
	// Strict: a misspelt key would otherwise leave a case expecting nothing.
	if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
		return 0, 0, fmt.Errorf("health_test.yaml: %w", err)
	}
	if len(tests.Tests) == 0 {
		return 0, 0, fmt.Errorf("health_test.yaml has no tests")
	}
	for _, tc := range tests.Tests {
		name := filepath.Join(dir, tc.InputPath)
		got, err := runCase(string(script), dir, tc)
		switch {
		case err != nil:
			fmt.Printf("FAIL %s: %v\n", name, err)
			failed++
		case got != tc.HealthStatus:
			fmt.Printf("FAIL %s:\n       got  %s: %q\n       want %s: %q\n",
				name, got.Status, got.Message, tc.HealthStatus.Status, tc.HealthStatus.Message)
			failed++
		default:
			fmt.Printf("ok   %s: %s\n", name, got.Status)
			passed++
		}
	}
	return passed, failed, nil
}

func runCase(script, dir string, tc testCase) (healthStatus, error) {
	if tc.InputPath == "" {
		return healthStatus{}, fmt.Errorf("case has no inputPath")
	}
	if !validStatuses[tc.HealthStatus.Status] {
		return healthStatus{}, fmt.Errorf("expected status %q is not an Argo CD health status", tc.HealthStatus.Status)
	}
	raw, err := os.ReadFile(filepath.Join(dir, tc.InputPath))
	if err != nil {
		return healthStatus{}, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return healthStatus{}, fmt.Errorf("parsing the input: %w", err)
	}
	return execute(script, obj)
}

func execute(script string, obj map[string]any) (healthStatus, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, lua.OpenOs},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	// Argo CD exposes only os.time and os.date, to os and to require("os").
	full := L.GetGlobal(lua.OsLibName).(*lua.LTable)
	safe := L.NewTable()
	for _, fn := range []string{"time", "date"} {
		safe.RawSetString(fn, full.RawGetString(fn))
	}
	L.SetGlobal(lua.OsLibName, safe)
	L.PreloadModule(lua.OsLibName, func(L *lua.LState) int { L.Push(safe); return 1 })

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return healthStatus{}, fmt.Errorf("script error: %w", err)
	}
	returned, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", L.Get(-1).Type())
	}
	status, err := stringField(returned, "status")
	if err != nil {
		return healthStatus{}, err
	}
	message, err := stringField(returned, "message")
	if err != nil {
		return healthStatus{}, err
	}
	if !validStatuses[status] {
		return healthStatus{Status: "Unknown", Message: invalidHealthStatus}, nil
	}
	return healthStatus{Status: status, Message: message}, nil
}

// stringField reads a string field of the returned table; Argo CD decodes the
// table through JSON into string fields, so any other type is an error there.
func stringField(table *lua.LTable, key string) (string, error) {
	switch value := table.RawGetString(key).(type) {
	case *lua.LNilType:
		return "", nil
	case lua.LString:
		return string(value), nil
	default:
		return "", fmt.Errorf("returned %s is a %s, not a string", key, value.Type())
	}
}

// toLua converts a decoded JSON value the way Argo CD hands objects to scripts.
func toLua(L *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		seq := L.CreateTable(len(v), 0)
		for _, item := range v {
			seq.Append(toLua(L, item))
		}
		return seq
	case map[string]any:
		table := L.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(L, item))
		}
		return table
	default:
		return lua.LNil
	}
}
