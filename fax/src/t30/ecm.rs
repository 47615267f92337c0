//! Error correction mode bookkeeping (T.30 Annex A, T.4 Annex A): a page is
//! cut into 256-octet FCD frames, up to 256 frames per partial page
//! (block); each block ends with RCP frames and a PPS-Q command, and the
//! receiver answers MCF or PPR with a bitmap of the frames to send again.

use std::ops::Range;

use super::frames::{fcd_frame, Fcf, Frame, Pps};

/// Octets of facsimile data per FCD frame (we always send 256, T.4 A.3.6).
pub const FRAME_OCTETS: usize = 256;
/// Frames per partial page (block).
pub const MAX_FRAMES: usize = 256;
/// RCP frames sent after each burst (T.4 Annex A: three).
const RCP_COUNT: usize = 3;

/// Transmit state of one page in ECM.
#[derive(Debug, Clone)]
pub(super) struct EcmTx {
    page_len: usize,
    block: usize,
    resend: Vec<bool>,
    /// PPRs received for the current block since the last CTC.
    pub ppr_count: u32,
    /// CTCs sent for the current block.
    pub ctc_count: u32,
}

impl EcmTx {
    /// Starts a page of `page_len` octets at block 0, every frame pending.
    pub fn new(page_len: usize) -> EcmTx {
        let mut tx = EcmTx {
            page_len,
            block: 0,
            resend: Vec::new(),
            ppr_count: 0,
            ctc_count: 0,
        };
        tx.resend = vec![true; tx.frames()];
        tx
    }

    fn blocks(&self) -> usize {
        self.page_len.div_ceil(FRAME_OCTETS * MAX_FRAMES).max(1)
    }

    /// The current block is the page's last.
    pub fn is_last_block(&self) -> bool {
        self.block + 1 >= self.blocks()
    }

    /// Frames in the current block (at least 1, even for an empty page).
    pub fn frames(&self) -> usize {
        let start = self.block * FRAME_OCTETS * MAX_FRAMES;
        let left = self.page_len.saturating_sub(start);
        left.div_ceil(FRAME_OCTETS).clamp(1, MAX_FRAMES)
    }

    fn octets(&self, frame: usize) -> Range<usize> {
        let start = (self.block * MAX_FRAMES + frame) * FRAME_OCTETS;
        let end = (start + FRAME_OCTETS).min(self.page_len);
        start.min(end)..end
    }

    /// The next burst: FCD frames still pending, then RCP × 3.
    pub fn burst(&self, page: &[u8], x: bool) -> Vec<Frame> {
        let mut out: Vec<Frame> = self
            .resend
            .iter()
            .enumerate()
            .filter(|(_, r)| **r)
            .map(|(i, _)| {
                let data = page.get(self.octets(i)).unwrap_or(&[]);
                fcd_frame(u8::try_from(i).unwrap_or(u8::MAX), data, x)
            })
            .collect();
        for _ in 0..RCP_COUNT {
            out.push(Frame {
                fcf: Fcf::Rcp,
                x,
                last: false,
                fif: Vec::new(),
            });
        }
        out
    }

    /// Frames pending for the next burst.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.resend.iter().filter(|r| **r).count()
    }

    /// Marks the frames a PPR asks for (others are confirmed).
    pub fn apply_ppr(&mut self, missing: &[usize]) {
        self.resend.iter_mut().for_each(|r| *r = false);
        for &n in missing {
            if let Some(r) = self.resend.get_mut(n) {
                *r = true;
            }
        }
    }

    /// Moves to the next block; false at the end of the page.
    pub fn next_block(&mut self) -> bool {
        if self.is_last_block() {
            return false;
        }
        self.block += 1;
        self.resend = vec![true; self.frames()];
        self.ppr_count = 0;
        self.ctc_count = 0;
        true
    }

    /// The PPS for the current block. The frame count is the block's total
    /// (as spandsp 0.0.6 sends it), not just this burst's.
    pub fn pps(&self, q: Option<Fcf>, page: u32) -> Pps {
        Pps {
            q,
            page: (page & 0xFF) as u8,
            block: (self.block & 0xFF) as u8,
            frames: u16::try_from(self.frames()).unwrap_or(256),
        }
    }
}

/// Receive state of one block.
#[derive(Debug, Clone)]
pub(super) struct EcmRx {
    frames: Vec<Option<Vec<u8>>>,
    count: usize,
}

impl Default for EcmRx {
    fn default() -> Self {
        EcmRx {
            frames: vec![None; MAX_FRAMES],
            count: 0,
        }
    }
}

impl EcmRx {
    /// Stores an FCD frame's data (the FIF after the frame number). Returns
    /// false for an oversize frame.
    pub fn store(&mut self, fif: &[u8]) -> bool {
        let [number, data @ ..] = fif else {
            return false;
        };
        if data.len() > FRAME_OCTETS {
            return false;
        }
        let n = usize::from(number.reverse_bits());
        match self.frames.get_mut(n) {
            Some(slot) => {
                *slot = Some(data.to_vec());
                true
            }
            None => false,
        }
    }

    /// Notes the block size from a PPS. Senders differ on whether a
    /// retransmission's PPS counts the block or the burst, so keep the
    /// largest count seen.
    pub fn note_count(&mut self, frames: u16) {
        self.count = self.count.max(usize::from(frames).min(MAX_FRAMES));
    }

    /// Frames of the block not yet received.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.count)
            .filter(|&i| self.frames.get(i).is_none_or(Option::is_none))
            .collect()
    }

    /// True if any frame is stored.
    #[cfg(test)]
    pub fn any(&self) -> bool {
        self.frames.iter().any(Option::is_some)
    }

    /// The block's data in frame order, and how many frames were missing;
    /// resets for the next block.
    pub fn take(&mut self) -> (Vec<u8>, u32) {
        let mut data = Vec::new();
        let mut missing = 0;
        for slot in self.frames.iter_mut().take(self.count) {
            match slot.take() {
                Some(d) => data.extend_from_slice(&d),
                None => missing += 1,
            }
        }
        *self = EcmRx::default();
        (data, missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t30::frames::decode_ppr;

    #[test]
    fn page_is_cut_into_blocks_and_frames() {
        let page: Vec<u8> = (0..(65_536 + 300)).map(|i| (i % 251) as u8).collect();
        let mut tx = EcmTx::new(page.len());
        assert_eq!((tx.frames(), tx.is_last_block()), (256, false));
        let burst = tx.burst(&page, false);
        assert_eq!(burst.len(), 256 + 3);
        assert_eq!(burst[1].fif[0], 1u8.reverse_bits());
        assert_eq!(&burst[1].fif[1..], &page[256..512]);
        assert_eq!(burst[258].fcf, Fcf::Rcp);
        assert_eq!(tx.pps(Some(Fcf::Mps), 3).frames, 256);
        assert!(tx.next_block());
        assert_eq!((tx.frames(), tx.is_last_block()), (2, true));
        let burst = tx.burst(&page, true);
        assert_eq!(burst[1].fif.len(), 1 + 300 - 256);
        assert_eq!(tx.pps(None, 0).block, 1);
        assert!(!tx.next_block());
    }

    #[test]
    fn ppr_selects_frames_to_resend() {
        let page = vec![7u8; 1000];
        let mut tx = EcmTx::new(page.len());
        tx.apply_ppr(&[1, 3, 200]);
        assert_eq!(tx.pending(), 2);
        let burst = tx.burst(&page, false);
        assert_eq!(burst.len(), 2 + 3);
        assert_eq!(burst[1].fif[0], 3u8.reverse_bits());
        assert_eq!(burst[1].fif.len(), 1 + 1000 - 768);
    }

    #[test]
    fn receiver_finds_missing_frames_and_reassembles() {
        let page: Vec<u8> = (0..1000).map(|i| (i % 13) as u8).collect();
        let tx = EcmTx::new(page.len());
        let mut rx = EcmRx::default();
        for (i, f) in tx.burst(&page, false).iter().enumerate() {
            if f.fcf == Fcf::Fcd && i != 2 {
                assert!(rx.store(&f.fif));
            }
        }
        rx.note_count(tx.pps(None, 0).frames);
        assert_eq!(rx.missing(), vec![2]);
        let ppr = crate::t30::frames::encode_ppr(rx.missing());
        assert_eq!(decode_ppr(&ppr), vec![2]);
        let again = tx.burst(&page, false);
        assert!(rx.store(&again[2].fif));
        // A smaller count from a retransmission burst does not shrink the block.
        rx.note_count(1);
        assert!(rx.missing().is_empty());
        assert_eq!(rx.take(), (page, 0));
        assert!(!rx.any());
        assert!(!rx.store(&[]));
        assert!(!rx.store(&[0; 300]));
    }
}
