//! Voice activity on telephone audio: an energy detector over 20 ms frames
//! with a noise floor that follows the line, turned into the start and end
//! of each utterance.

/// Samples in one 20 ms frame at 8 kHz (one Twilio media message).
pub const FRAME: usize = 160;
const FRAME_MS: u32 = 20;

/// The endpointer's thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VadSettings {
    /// How far above the noise floor a frame must be to count as speech.
    pub threshold_db: f32,
    /// Quietest level ever taken for speech, in dBFS (line hiss is below).
    pub min_level_dbfs: f32,
    /// Speech that must last this long to start an utterance (a click or a
    /// breath is shorter).
    pub start_ms: u32,
    /// Silence that ends an utterance.
    pub end_ms: u32,
    /// An utterance is cut here (a caller with a television on would
    /// otherwise never end one).
    pub max_utterance_ms: u32,
    /// Audio kept from before the start, so the first sound is decoded.
    pub preroll_ms: u32,
}

impl Default for VadSettings {
    fn default() -> Self {
        VadSettings {
            threshold_db: 12.0,
            min_level_dbfs: -45.0,
            start_ms: 60,
            end_ms: 600,
            max_utterance_ms: 15_000,
            preroll_ms: 300,
        }
    }
}

/// What a frame changed.
#[derive(Clone, Debug, PartialEq)]
pub enum VadEvent {
    /// Speech began; carries the pre-roll and the frames that started it.
    Started(Vec<i16>),
    /// A frame inside an utterance.
    Speech(Vec<i16>),
    /// The utterance is over (silence, or the length cap).
    Ended,
}

/// The endpointer of one call.
#[derive(Debug)]
pub struct Endpointer {
    settings: VadSettings,
    noise_db: f32,
    recent: std::collections::VecDeque<Vec<i16>>,
    voiced_run: u32,
    silent_run: u32,
    utterance_ms: u32,
    speaking: bool,
    partial: Vec<i16>,
}

/// RMS level of a frame in dBFS.
pub fn level_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -120.0;
    }
    let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (energy / frame.len() as f64).sqrt() / f64::from(i16::MAX);
    (20.0 * rms.max(1e-6).log10()) as f32
}

impl Endpointer {
    /// An endpointer that has heard nothing yet.
    pub fn new(settings: VadSettings) -> Endpointer {
        Endpointer {
            settings,
            noise_db: settings.min_level_dbfs - settings.threshold_db,
            recent: Default::default(),
            voiced_run: 0,
            silent_run: 0,
            utterance_ms: 0,
            speaking: false,
            partial: Vec::new(),
        }
    }

    /// Whether an utterance is in progress.
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Feeds 8 kHz audio of any length; returns what it changed, in order.
    pub fn push(&mut self, samples: &[i16]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        self.partial.extend_from_slice(samples);
        while self.partial.len() >= FRAME {
            let frame: Vec<i16> = self.partial.drain(..FRAME).collect();
            if let Some(event) = self.frame(frame) {
                events.push(event);
            }
        }
        events
    }

    fn frame(&mut self, frame: Vec<i16>) -> Option<VadEvent> {
        let level = level_dbfs(&frame);
        let voiced = level >= self.settings.min_level_dbfs
            && level >= self.noise_db + self.settings.threshold_db;
        // The floor falls at once to quieter frames and rises slowly, so
        // speech does not raise it but a noisier line does.
        if !voiced {
            self.noise_db = if level < self.noise_db {
                level
            } else {
                self.noise_db + 0.05 * (level - self.noise_db)
            };
        }
        if self.speaking {
            self.utterance_ms += FRAME_MS;
            self.silent_run = if voiced {
                0
            } else {
                self.silent_run + FRAME_MS
            };
            if self.silent_run >= self.settings.end_ms
                || self.utterance_ms >= self.settings.max_utterance_ms
            {
                self.speaking = false;
                self.voiced_run = 0;
                self.silent_run = 0;
                return Some(VadEvent::Ended);
            }
            return Some(VadEvent::Speech(frame));
        }
        self.voiced_run = if voiced {
            self.voiced_run + FRAME_MS
        } else {
            0
        };
        self.recent.push_back(frame);
        let keep = (self.settings.preroll_ms.max(self.settings.start_ms) / FRAME_MS) as usize;
        while self.recent.len() > keep.max(1) {
            self.recent.pop_front();
        }
        if self.voiced_run >= self.settings.start_ms {
            self.speaking = true;
            self.utterance_ms = self.voiced_run;
            self.silent_run = 0;
            let audio = self.recent.drain(..).flatten().collect();
            return Some(VadEvent::Started(audio));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u32, amplitude: f64) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| (amplitude * (f64::from(i) * 0.35).sin()) as i16)
            .collect()
    }

    fn run(endpointer: &mut Endpointer, audio: &[i16]) -> Vec<&'static str> {
        endpointer
            .push(audio)
            .iter()
            .filter_map(|e| match e {
                VadEvent::Started(_) => Some("started"),
                VadEvent::Ended => Some("ended"),
                VadEvent::Speech(_) => None,
            })
            .collect()
    }

    #[test]
    fn speech_between_silences_is_one_utterance() {
        let mut ep = Endpointer::new(VadSettings::default());
        assert!(
            run(&mut ep, &tone(500, 20.0)).is_empty(),
            "hiss is not speech"
        );
        assert_eq!(run(&mut ep, &tone(800, 8_000.0)), vec!["started"]);
        assert!(ep.speaking());
        // A pause shorter than end_ms stays inside the utterance.
        assert!(run(&mut ep, &tone(300, 20.0)).is_empty());
        assert!(run(&mut ep, &tone(300, 8_000.0)).is_empty());
        assert_eq!(run(&mut ep, &tone(700, 20.0)), vec!["ended"]);
        assert!(!ep.speaking());
    }

    #[test]
    fn a_click_shorter_than_start_ms_is_ignored() {
        let mut ep = Endpointer::new(VadSettings::default());
        assert!(run(&mut ep, &tone(40, 10_000.0)).is_empty());
        assert!(run(&mut ep, &tone(400, 0.0)).is_empty());
    }

    #[test]
    fn the_start_carries_the_preroll() {
        let mut ep = Endpointer::new(VadSettings::default());
        ep.push(&tone(400, 10.0));
        let events = ep.push(&tone(60, 8_000.0));
        let VadEvent::Started(audio) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(
            audio.len(),
            300 * 8,
            "300 ms of pre-roll including the onset"
        );
    }

    #[test]
    fn endless_speech_is_cut_at_the_cap() {
        let settings = VadSettings {
            max_utterance_ms: 2_000,
            ..VadSettings::default()
        };
        let mut ep = Endpointer::new(settings);
        assert_eq!(
            run(&mut ep, &tone(3_000, 9_000.0)),
            vec!["started", "ended", "started"]
        );
    }

    #[test]
    fn the_floor_follows_line_noise_and_speech_over_it_still_starts() {
        let mut ep = Endpointer::new(VadSettings::default());
        run(&mut ep, &tone(2_000, 100.0));
        assert!(!ep.speaking());
        assert!(
            ep.noise_db > -55.0,
            "the floor rose to the line: {}",
            ep.noise_db
        );
        assert_eq!(run(&mut ep, &tone(200, 12_000.0)), vec!["started"]);
    }
}
