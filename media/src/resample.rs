//! Sample-rate conversion between the telephony rates 8, 16 and 24 kHz (PCM16, mono).
//!
//! A rational L/M polyphase resampler: conceptually the input is upsampled by L (zero
//! stuffing), low-pass filtered at the lower of the two Nyquist frequencies, and decimated by M;
//! only the outputs actually kept are computed, each from one phase of the prototype filter.
//! The prototype is a Blackman-windowed sinc with 32 × max(L, M) taps, designed once at
//! construction, with every phase normalised to unity DC gain. The filter history and the
//! fractional output position are carried between calls, so feeding 20 ms frames gives the
//! same samples as feeding the whole signal at once: no clicks at frame boundaries, and output
//! lengths are exact (160 ↔ 320 ↔ 480 samples per 20 ms). The group delay is half the
//! prototype length (about 2 ms).

use std::f64::consts::PI;

/// Prototype taps per unit of max(L, M).
const TAPS_PER_RATIO: usize = 32;
/// Cut-off as a fraction of the lower Nyquist frequency (leaves a transition band).
const CUTOFF: f64 = 0.95;

/// A telephony sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleRate {
    /// 8 kHz (G.711, Twilio, Exotel default).
    Hz8000,
    /// 16 kHz (wideband; Exotel "enhanced", typical ESP32 capture).
    Hz16000,
    /// 24 kHz (Exotel "HD").
    Hz24000,
}

impl SampleRate {
    /// The rate for `hz`, if it is one of 8000, 16000 or 24000.
    pub fn from_hz(hz: u32) -> Option<Self> {
        match hz {
            8000 => Some(SampleRate::Hz8000),
            16000 => Some(SampleRate::Hz16000),
            24000 => Some(SampleRate::Hz24000),
            _ => None,
        }
    }

    /// Samples per second.
    pub fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8000,
            SampleRate::Hz16000 => 16000,
            SampleRate::Hz24000 => 24000,
        }
    }

    /// Samples per millisecond (8, 16 or 24).
    pub fn samples_per_ms(self) -> usize {
        self.hz() as usize / 1000
    }

    /// Samples in one 20 ms frame (160, 320 or 480).
    pub fn samples_per_20ms(self) -> usize {
        self.samples_per_ms() * 20
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A streaming PCM16 resampler from one [`SampleRate`] to another.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: SampleRate,
    to: SampleRate,
    up: usize,
    down: usize,
    taps_per_phase: usize,
    /// Polyphase coefficients: phase `p`, tap `j` at `p * taps_per_phase + j`; tap `j`
    /// multiplies the input `j` samples before the newest one used.
    coeffs: Vec<f32>,
    /// The last `taps_per_phase - 1` inputs, then the inputs of the current call.
    buf: Vec<f32>,
    /// Position of the next output, in upsampled samples from the start of `buf`.
    pos: usize,
}

impl Resampler {
    /// A resampler from `from` to `to` (equal rates copy samples through).
    pub fn new(from: SampleRate, to: SampleRate) -> Self {
        let (f, t) = (from.hz() as usize, to.hz() as usize);
        let g = gcd(f, t);
        let (up, down) = (t / g, f / g);
        let ratio = up.max(down);
        let len = if ratio == 1 {
            1
        } else {
            TAPS_PER_RATIO * ratio
        };
        let taps_per_phase = len.div_ceil(up);
        let total = taps_per_phase * up;
        // Cut-off in cycles per upsampled sample.
        let fc = CUTOFF * 0.5 / ratio as f64;
        let centre = (total - 1) as f64 / 2.0;
        let proto: Vec<f64> = (0..total)
            .map(|n| {
                if ratio == 1 {
                    return 1.0;
                }
                let x = n as f64 - centre;
                let sinc = if x == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * PI * fc * x).sin() / (PI * x)
                };
                let w = 2.0 * PI * n as f64 / (total - 1) as f64;
                sinc * (0.42 - 0.5 * w.cos() + 0.08 * (2.0 * w).cos())
            })
            .collect();
        let mut coeffs = vec![0f32; total];
        for p in 0..up {
            let sum: f64 = (0..taps_per_phase).map(|j| proto[p + j * up]).sum();
            let norm = if sum.abs() > 1e-12 { 1.0 / sum } else { 1.0 };
            for j in 0..taps_per_phase {
                coeffs[p * taps_per_phase + j] = (proto[p + j * up] * norm) as f32;
            }
        }
        let mut r = Resampler {
            from,
            to,
            up,
            down,
            taps_per_phase,
            coeffs,
            buf: Vec::new(),
            pos: 0,
        };
        r.reset();
        r
    }

    /// The input rate.
    pub fn from_rate(&self) -> SampleRate {
        self.from
    }

    /// The output rate.
    pub fn to_rate(&self) -> SampleRate {
        self.to
    }

    /// Forgets the filter history (for a new, unrelated stream).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(self.taps_per_phase - 1, 0.0);
        self.pos = (self.taps_per_phase - 1) * self.up;
    }

    /// Group delay of the filter in microseconds.
    pub fn delay_us(&self) -> u64 {
        let total = (self.taps_per_phase * self.up) as u64;
        let up_rate = u64::from(self.from.hz()) * self.up as u64;
        (total - 1) * 500_000 / up_rate
    }

    /// Resamples `input`, appending the outputs to `out`. Over a stream, the number of outputs
    /// is exactly `inputs × to / from` (rounded down, the remainder carried to the next call).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.up == 1 && self.down == 1 {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        let tpp = self.taps_per_phase;
        out.reserve(input.len() * self.up / self.down + 1);
        loop {
            let newest = self.pos / self.up;
            if newest >= self.buf.len() {
                break;
            }
            let phase = self.pos % self.up;
            let taps = &self.coeffs[phase * tpp..(phase + 1) * tpp];
            // newest >= tpp - 1 holds by construction (see `reset` and the drain below).
            let window = &self.buf[newest + 1 - tpp..=newest];
            let acc: f32 = taps
                .iter()
                .zip(window.iter().rev())
                .map(|(c, x)| c * x)
                .sum();
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            self.pos += self.down;
        }
        let keep = tpp - 1;
        let drop = self.buf.len() - keep;
        self.buf.drain(..drop);
        self.pos -= drop * self.up;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [SampleRate; 3] = [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz24000];

    fn sine(rate: SampleRate, freq: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * PI * freq * i as f64 / rate.hz() as f64).sin()).round() as i16)
            .collect()
    }

    fn run_frames(r: &mut Resampler, input: &[i16], frame: usize) -> Vec<i16> {
        let mut out = Vec::new();
        for chunk in input.chunks(frame) {
            let before = out.len();
            r.process(chunk, &mut out);
            if chunk.len() == r.from.samples_per_20ms() {
                assert_eq!(out.len() - before, r.to.samples_per_20ms());
            }
        }
        out
    }

    #[test]
    fn rates() {
        for r in RATES {
            assert_eq!(SampleRate::from_hz(r.hz()), Some(r));
        }
        assert_eq!(SampleRate::from_hz(44100), None);
        assert_eq!(SampleRate::Hz8000.samples_per_20ms(), 160);
        assert_eq!(SampleRate::Hz16000.samples_per_20ms(), 320);
        assert_eq!(SampleRate::Hz24000.samples_per_20ms(), 480);
    }

    #[test]
    fn frame_lengths_are_exact() {
        for from in RATES {
            for to in RATES {
                let mut r = Resampler::new(from, to);
                let input = sine(from, 440.0, 8000.0, from.samples_per_20ms() * 25);
                let out = run_frames(&mut r, &input, from.samples_per_20ms());
                assert_eq!(out.len(), to.samples_per_20ms() * 25, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn odd_chunks_give_exact_total_and_same_samples() {
        for from in RATES {
            for to in RATES {
                let input = sine(from, 700.0, 12000.0, from.samples_per_20ms() * 10);
                let mut whole = Resampler::new(from, to);
                let mut expected = Vec::new();
                whole.process(&input, &mut expected);
                for chunk in [1usize, 7, 13, 160, 333] {
                    let mut r = Resampler::new(from, to);
                    let out = run_frames(&mut r, &input, chunk);
                    assert_eq!(out, expected, "{from:?} -> {to:?} in chunks of {chunk}");
                }
                assert_eq!(expected.len(), to.samples_per_20ms() * 10);
            }
        }
    }

    fn zero_crossings(s: &[i16]) -> usize {
        s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
    }

    #[test]
    fn sine_keeps_frequency_amplitude_and_continuity() {
        for from in RATES {
            for to in RATES {
                for freq in [300.0, 1000.0, 2500.0] {
                    let amp = 10000.0;
                    let mut r = Resampler::new(from, to);
                    let input = sine(from, freq, amp, from.samples_per_20ms() * 50);
                    let out = run_frames(&mut r, &input, from.samples_per_20ms());
                    // Skip the filter's warm-up (40 ms), measure over the rest.
                    let skip = to.samples_per_20ms() * 2;
                    let steady = &out[skip..];
                    let seconds = steady.len() as f64 / to.hz() as f64;
                    let expected = 2.0 * freq * seconds;
                    let zc = zero_crossings(steady) as f64;
                    assert!(
                        (zc - expected).abs() <= 2.0,
                        "{from:?}->{to:?} {freq} Hz: {zc}"
                    );
                    let peak = steady
                        .iter()
                        .map(|s| i32::from(*s).abs())
                        .max()
                        .unwrap_or(0);
                    let err = (f64::from(peak) - amp).abs() / amp;
                    assert!(err < 0.03, "{from:?}->{to:?} {freq} Hz: peak {peak}");
                    // Continuity: no step larger than the sine's steepest slope allows
                    // (frame boundaries included; `odd_chunks_…` proves them seamless).
                    let max_step = 2.0 * PI * freq * amp / to.hz() as f64 * 1.05 + 2.0;
                    for w in steady.windows(2) {
                        let step = f64::from((i32::from(w[1]) - i32::from(w[0])).abs());
                        assert!(step <= max_step, "{from:?}->{to:?} {freq} Hz: step {step}");
                    }
                }
            }
        }
    }

    #[test]
    fn output_matches_delayed_sine() {
        let (from, to) = (SampleRate::Hz8000, SampleRate::Hz24000);
        let mut r = Resampler::new(from, to);
        let input = sine(from, 1000.0, 10000.0, 8000);
        let out = run_frames(&mut r, &input, 160);
        let delay = r.delay_us() as f64 / 1e6;
        let mut worst = 0.0f64;
        for (i, s) in out.iter().enumerate().skip(480) {
            let t = i as f64 / 24000.0 - delay;
            let ideal = 10000.0 * (2.0 * PI * 1000.0 * t).sin();
            worst = worst.max((f64::from(*s) - ideal).abs());
        }
        assert!(worst < 250.0, "worst deviation {worst}");
    }

    #[test]
    fn downsampling_rejects_aliases() {
        // 6 kHz is above the 4 kHz Nyquist of the 8 kHz output and must not fold back.
        for from in [SampleRate::Hz16000, SampleRate::Hz24000] {
            let mut r = Resampler::new(from, SampleRate::Hz8000);
            let input = sine(from, 6000.0, 10000.0, from.samples_per_20ms() * 20);
            let out = run_frames(&mut r, &input, from.samples_per_20ms());
            let peak = out[320..].iter().map(|s| i32::from(*s).abs()).max();
            assert!(peak.unwrap_or(0) < 300, "{from:?}: alias peak {peak:?}");
        }
    }

    #[test]
    fn dc_and_full_scale_do_not_overflow() {
        for from in RATES {
            for to in RATES {
                let mut r = Resampler::new(from, to);
                let mut out = Vec::new();
                r.process(&vec![i16::MAX; 2000], &mut out);
                assert!(out[out.len() / 2..].iter().all(|&s| s >= 32700));
                let mut r = Resampler::new(from, to);
                let square: Vec<i16> = (0..2000)
                    .map(|i| if (i / 7) % 2 == 0 { i16::MAX } else { i16::MIN })
                    .collect();
                out.clear();
                r.process(&square, &mut out);
                assert!(!out.is_empty());
            }
        }
    }

    #[test]
    fn reset_restarts_cleanly() {
        let mut r = Resampler::new(SampleRate::Hz16000, SampleRate::Hz24000);
        let input = sine(SampleRate::Hz16000, 500.0, 9000.0, 320);
        let mut a = Vec::new();
        r.process(&input, &mut a);
        r.reset();
        let mut b = Vec::new();
        r.process(&input, &mut b);
        assert_eq!(a, b);
        assert_eq!(r.from_rate(), SampleRate::Hz16000);
        assert_eq!(r.to_rate(), SampleRate::Hz24000);
    }
}
