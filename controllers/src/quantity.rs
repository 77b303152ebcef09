//! Checks that a string is a Kubernetes resource quantity, so that a bad
//! `spec.limits.cpu` becomes a clear condition instead of a failing apply
//! retried forever.

/// Whether `s` is a valid Kubernetes quantity: a non-negative decimal number
/// with an optional binary (`Ki`…`Ei`), decimal (`n`, `u`, `m`, `k`, `M`…`E`)
/// or exponent (`e3`, `E-2`) suffix.
pub fn is_valid(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return false;
    }
    match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        exp if exp.starts_with(['e', 'E']) => {
            let rest = &exp[1..];
            let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn accepts_kubernetes_quantities() {
        for q in [
            "4", "500m", "0.5", "8Gi", "512Mi", "1e3", "1E-2", "+2", "1.5k", ".5",
        ] {
            assert!(is_valid(q), "{q}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for q in ["", "-1", "abc", "8GB", "1.2.3", "Gi", "1e", "4 cores", "."] {
            assert!(!is_valid(q), "{q}");
        }
    }
}
