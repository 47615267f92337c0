//! `switchboard-fax`: sans-IO fax, from the T.38 packets on the wire to the page images.
//! SIP signalling is in `switchboard-sip`; RTP and audio media in `switchboard-media`.
//!
//! - [`t38`]: T.38 fax relay (ITU-T T.38): the IFP packets and their PER encoding, the UDPTL
//!   transport with redundancy/FEC, and the SDP parameters of a T.38 session.
//! - [`t30`]: a T.30 fax terminal (ITU-T T.30 phases A–E, ECM) that talks T.38 IFP packets.
//! - [`t4`]: ITU-T T.4 (Modified Huffman, Modified READ) and T.6 (MMR) row codecs and
//!   the [`t4::Bitmap`] page image (packed rows, MSB first, 1 = black).
//! - [`tiff`]: TIFF 6.0 reading (bilevel, uncompressed/PackBits/CCITT) and TIFF Class F
//!   writing, plus [`tiff::fit_to_fax`] to normalise a page for sending.
//!
//! No clock, no sockets, no threads: drivers feed datagrams and time in and take datagrams out.

pub mod t30;
pub mod t38;
pub mod t4;
pub mod tiff;
