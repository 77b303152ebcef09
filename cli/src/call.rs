//! `dialtone call`: one phone call in audio, as Twilio would place it. The
//! caller rings the pod's signed voice webhook, streams real-time µ-law
//! over Media Streams and speaks each `say:` line with espeak-ng (or keys
//! each `keys:` line) once the agent has finished its turn.

use dialtone_voice::audio_caller::{self, AudioCall, AudioCallError, Line};

/// Reads one `say:TEXT` or `keys:DIGITS` line of a script.
pub fn parse_line(line: &str) -> Result<Line, String> {
    match line.split_once(':') {
        Some(("say", text)) if !text.trim().is_empty() => Ok(Line::Say(text.trim().to_owned())),
        Some(("interrupt", text)) if !text.trim().is_empty() => {
            Ok(Line::Interrupt(text.trim().to_owned()))
        }
        Some(("keys", keys))
            if !keys.is_empty()
                && keys
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '#' || c == '*') =>
        {
            Ok(Line::Keys(keys.to_owned()))
        }
        _ => Err(format!(
            "{line:?}: a line is say:WORDS, interrupt:WORDS (said over the agent) or keys:DIGITS (0-9, # and *)"
        )),
    }
}

/// Places the call and prints each exchange; `false` when the agent did
/// not end the call itself.
pub async fn run(call: &AudioCall) -> Result<bool, AudioCallError> {
    println!(
        "calling {} from {} as {} at {} wpm",
        call.to, call.from, call.voice.0, call.voice.1
    );
    let report = audio_caller::place(call).await?;
    for exchange in &report.exchanges {
        match exchange.reply_ms {
            Some(ms) => println!(
                "  agent: {:.1} s of audio, {ms} ms after the caller finished",
                exchange.agent_seconds
            ),
            None => println!("  agent: {:.1} s of audio", exchange.agent_seconds),
        }
        match &exchange.caller {
            Some(Line::Say(text)) => println!("  caller says: {text}"),
            Some(Line::Interrupt(text)) => match exchange.barge_in_ms {
                Some(ms) => println!(
                    "  caller talks over it: {text} (the agent stopped {ms} ms after the caller began)"
                ),
                None => println!("  caller talks over it: {text} (the agent did not stop)"),
            },
            Some(Line::Keys(keys)) => println!("  caller keys: {keys}"),
            None => {}
        }
    }
    match report.clears {
        0 => {}
        1 => println!("  the agent stopped talking once for the caller"),
        n => println!("  the agent stopped talking {n} times for the caller"),
    }
    println!(
        "  {}",
        if report.agent_hung_up {
            "the agent ended the call"
        } else {
            "the script ran out before the agent ended the call"
        }
    );
    Ok(report.agent_hung_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_lines_say_or_key() {
        assert_eq!(
            parse_line("say: yes please"),
            Ok(Line::Say("yes please".into()))
        );
        assert_eq!(parse_line("keys:0412#"), Ok(Line::Keys("0412#".into())));
        assert_eq!(
            parse_line("interrupt:hello"),
            Ok(Line::Interrupt("hello".into()))
        );
        for bad in ["yes", "say:", "keys:12a", "keys:", "shout:hi"] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
