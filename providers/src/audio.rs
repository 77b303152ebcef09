//! Telephone audio: G.711 µ-law at 8 kHz, the format of Twilio Media Streams
//! and of every TTS adapter's output.

use std::f64::consts::PI;

/// The telephone sample rate.
pub const SAMPLE_RATE: u32 = 8_000;

/// µ-law bias added before the segment search (G.711).
const BIAS: i32 = 0x84;
/// Largest magnitude that still fits the top segment once biased.
const CLIP: i32 = 32_635;

/// Encodes one PCM16 sample as G.711 µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let value = i32::from(sample);
    let sign = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    // The segment is the position of the highest set bit above bit 7; the
    // bias guarantees bit 7 or higher is set.
    let highest_bit = 31 - magnitude.leading_zeros() as i32;
    let exponent = (highest_bit - 7).clamp(0, 7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    // Values fit in 8 bits by construction; µ-law transmits them inverted.
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one G.711 µ-law byte to PCM16.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let code = !code;
    let exponent = i32::from((code >> 4) & 0x07);
    let mantissa = i32::from(code & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    // At most 32124, so always an i16.
    let magnitude = magnitude as i16;
    if code & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Encodes PCM16 samples as µ-law, one byte per sample.
pub fn encode(samples: &[i16]) -> Vec<u8> {
    samples.iter().copied().map(linear_to_ulaw).collect()
}

/// Decodes µ-law bytes to PCM16 samples.
pub fn decode(codes: &[u8]) -> Vec<i16> {
    codes.iter().copied().map(ulaw_to_linear).collect()
}

/// Seconds of audio in `bytes` of 8 kHz µ-law.
pub fn ulaw_seconds(bytes: usize) -> f64 {
    bytes as f64 / f64::from(SAMPLE_RATE)
}

/// Resamples by linear interpolation between neighbouring samples. Cheap
/// and good enough for speech synthesised at 16–22 kHz going to the
/// 8 kHz telephone band; it does not low-pass filter first.
pub fn resample(samples: &[i16], from_hz: u32, to_hz: u32) -> Vec<i16> {
    if from_hz == to_hz || samples.is_empty() || from_hz == 0 || to_hz == 0 {
        return samples.to_vec();
    }
    let out_len = (samples.len() as u64 * u64::from(to_hz) / u64::from(from_hz)) as usize;
    let step = f64::from(from_hz) / f64::from(to_hz);
    let last = samples.len() - 1;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let left = (pos.floor() as usize).min(last);
            let right = (left + 1).min(last);
            let frac = pos - left as f64;
            let a = f64::from(samples[left]);
            let b = f64::from(samples[right]);
            // Between two i16 values, so within i16.
            (a + (b - a) * frac).round() as i16
        })
        .collect()
}

/// Milliseconds of tone per character of text.
pub const TONE_MS_PER_CHAR: usize = 60;

/// Deterministic µ-law audio standing in for speech: 60 ms per character of
/// `text` (a short beep whose pitch depends on the character, then a gap;
/// whitespace is silence). The same text always gives the same bytes, so
/// tests and offline demos can check what was "said" by its length.
pub fn tone(text: &str) -> Vec<u8> {
    let per_char = SAMPLE_RATE as usize * TONE_MS_PER_CHAR / 1000;
    let beep = per_char * 5 / 6;
    let silence = linear_to_ulaw(0);
    let mut out = Vec::with_capacity(text.chars().count() * per_char);
    for c in text.chars() {
        if c.is_whitespace() {
            out.extend(std::iter::repeat_n(silence, per_char));
            continue;
        }
        let hz = 300.0 + f64::from(u32::from(c) % 24) * 25.0;
        out.extend((0..beep).map(|n| {
            let t = n as f64 / f64::from(SAMPLE_RATE);
            // Amplitude well inside i16.
            linear_to_ulaw((6_000.0 * (2.0 * PI * hz * t).sin()) as i16)
        }));
        out.extend(std::iter::repeat_n(silence, per_char - beep));
    }
    out
}

/// PCM audio read from a WAV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// Mono PCM16 samples (multi-channel input keeps the first channel).
    pub samples: Vec<i16>,
}

/// Why a WAV file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file.
    #[error("not a RIFF WAVE file")]
    NotWave,
    /// The `fmt ` or `data` chunk is missing or cut short.
    #[error("WAV file is missing its {0} chunk")]
    MissingChunk(&'static str),
    /// Only 16-bit integer PCM is read.
    #[error("WAV format {format} with {bits} bits per sample is not 16-bit PCM")]
    Unsupported {
        /// The format tag (1 is PCM).
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
}

/// Reads a 16-bit PCM WAV file. A `data` chunk whose declared size runs
/// past the end is read to the end: programs writing WAV to a pipe (such as
/// `espeak-ng --stdout`) cannot go back to fill in the size.
pub fn parse_wav(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let le16 = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut format: Option<(u16, u16, u32, u16)> = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = le32(bytes, at + 4) as usize;
        let body_start = at + 8;
        let body_end = body_start.saturating_add(size).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(WavError::MissingChunk("fmt"));
                }
                format = Some((le16(body, 0), le16(body, 2), le32(body, 4), le16(body, 14)));
            }
            b"data" => {
                let (tag, channels, sample_rate, bits) =
                    format.ok_or(WavError::MissingChunk("fmt"))?;
                if tag != 1 || bits != 16 {
                    return Err(WavError::Unsupported { format: tag, bits });
                }
                let frame = 2 * usize::from(channels.max(1));
                let samples = body
                    .chunks_exact(frame)
                    .map(|f| i16::from_le_bytes([f[0], f[1]]))
                    .collect();
                return Ok(Wav {
                    sample_rate,
                    samples,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = body_start.saturating_add(size).saturating_add(size & 1);
    }
    Err(WavError::MissingChunk("data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        // Segment boundaries from the G.711 tables.
        assert_eq!(ulaw_to_linear(0xEF), 132);
        assert_eq!(ulaw_to_linear(0xDF), 396);
        assert_eq!(linear_to_ulaw(100), 0xF2);
    }

    #[test]
    fn round_trip_error_is_within_half_a_quantisation_step() {
        for x in i16::MIN..=i16::MAX {
            let y = ulaw_to_linear(linear_to_ulaw(x));
            let magnitude = i32::from(x).abs().min(CLIP);
            let err = (i32::from(y) - i32::from(x).clamp(-CLIP, CLIP)).abs();
            // The step of a segment is 1/16 of its lower edge, so half a
            // step is at most (|x| + bias) / 32.
            assert!(err <= (magnitude + BIAS) / 32 + 1, "x={x} y={y} err={err}");
            assert!(y.signum() * x.signum() >= 0, "sign of {x}");
        }
    }

    #[test]
    fn every_code_decodes_to_a_value_that_encodes_back_to_it() {
        for code in 0..=255u8 {
            let back = linear_to_ulaw(ulaw_to_linear(code));
            // 0x7F is "negative zero"; it decodes to 0 which encodes as 0xFF.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(back, expected, "code {code:#04x}");
        }
        let samples: Vec<i16> = (-20..20).map(|i| i * 1000).collect();
        assert_eq!(decode(&encode(&samples)).len(), samples.len());
    }

    #[test]
    fn resampling_keeps_duration_level_and_frequency() {
        assert_eq!(resample(&vec![0; 22_050], 22_050, 8_000).len(), 8_000);
        assert_eq!(resample(&vec![0; 16_000], 16_000, 8_000).len(), 8_000);
        assert_eq!(resample(&[7; 100], 22_050, 8_000), vec![7; 36]);
        let same = [1, 2, 3];
        assert_eq!(resample(&same, 8_000, 8_000), same);
        // A 1 kHz sine at 16 kHz comes out as a 1 kHz sine at 8 kHz.
        let sine = |rate: f64, n: usize| -> Vec<i16> {
            (0..n)
                .map(|i| (10_000.0 * (2.0 * PI * 1_000.0 * i as f64 / rate).sin()).round() as i16)
                .collect()
        };
        let got = resample(&sine(16_000.0, 1_600), 16_000, 8_000);
        let want = sine(8_000.0, 800);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1, "{g} vs {w}");
        }
        // Upsampling interpolates between neighbours.
        assert_eq!(resample(&[0, 100], 8_000, 16_000), vec![0, 50, 100, 100]);
    }

    #[test]
    fn tone_is_deterministic_and_proportional_to_the_text() {
        let per_char = 8_000 * TONE_MS_PER_CHAR / 1000;
        assert_eq!(tone("hello").len(), 5 * per_char);
        assert_eq!(tone("hello world").len(), 11 * per_char);
        assert_eq!(tone("").len(), 0);
        assert_eq!(tone("hello"), tone("hello"));
        assert_ne!(tone("hello"), tone("jello"));
        // Whitespace is silence; letters are not.
        assert!(tone(" ").iter().all(|&b| b == 0xFF));
        assert!(tone("a").iter().any(|&b| b != 0xFF));
    }

    fn wav(
        sample_rate: u32,
        channels: u16,
        samples: &[i16],
        declared_data: Option<u32>,
    ) -> Vec<u8> {
        let data_len = (samples.len() * 2) as u32;
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data_len).to_le_bytes());
        b.extend_from_slice(b"WAVE");
        b.extend_from_slice(b"LIST");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc\0");
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&sample_rate.to_le_bytes());
        b.extend_from_slice(&(sample_rate * 2 * u32::from(channels)).to_le_bytes());
        b.extend_from_slice(&(2 * channels).to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&declared_data.unwrap_or(data_len).to_le_bytes());
        for s in samples {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b
    }

    #[test]
    fn wav_files_are_read_including_streamed_ones() {
        let parsed = parse_wav(&wav(22_050, 1, &[1, -2, 300], None)).unwrap();
        assert_eq!(
            parsed,
            Wav {
                sample_rate: 22_050,
                samples: vec![1, -2, 300]
            }
        );
        // espeak-ng on a pipe declares a huge data size.
        let streamed = parse_wav(&wav(22_050, 1, &[5, 6], Some(0x7FFF_F000))).unwrap();
        assert_eq!(streamed.samples, vec![5, 6]);
        // Stereo keeps the first channel.
        let stereo = parse_wav(&wav(8_000, 2, &[1, 9, 2, 9], None)).unwrap();
        assert_eq!(stereo.samples, vec![1, 2]);
        assert_eq!(parse_wav(b"RIFF0000WAVX"), Err(WavError::NotWave));
        let mut float = wav(8_000, 1, &[0], None);
        float[32] = 3; // format tag IEEE float
        assert_eq!(
            parse_wav(&float),
            Err(WavError::Unsupported {
                format: 3,
                bits: 16
            })
        );
        let no_data = &wav(8_000, 1, &[], None)[..52];
        assert_eq!(parse_wav(no_data), Err(WavError::MissingChunk("data")));
    }
}
