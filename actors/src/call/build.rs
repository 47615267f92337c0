//! Building the messages of the B2BUA's two legs: moved to [`switchboard_call::build`]
//! (issue 13); re-exported here for the one-leg UA until it moves onto the core.

pub use switchboard_call::build::*;
