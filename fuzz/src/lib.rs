//! What the sequence fuzz targets (`sip_transactions`, `mqtt_broker`, `call_core`) share: the
//! reader that turns libFuzzer's bytes into a program of steps.

/// A fuzz input read as a program: every read takes bytes from the front; past the end
/// every read is 0, so any input is a whole program.
pub struct Program<'a> {
    data: &'a [u8],
}

impl<'a> Program<'a> {
    /// A program over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` raw bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    /// One of `from`, chosen by the next byte (`from` must not be empty).
    pub fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte()) % from.len()].clone()
    }

    /// Nothing left to read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}
