//! [`Slab`]: values by small dense index, freed places reused; an event loop keeps its
//! connections in one, so a connection's index is its poller token (minus a constant).

/// Connections by slab index; freed places are reused so tokens stay dense.
pub(crate) struct Slab<T> {
    /// The values by index; `None` where one was removed, so the others keep their index
    /// (and their token).
    entries: Vec<Option<T>>,
    /// Indexes of the `None` entries, reused first so indexes (and tokens) stay small.
    free: Vec<usize>,
    /// Values present, kept so counting them is not a scan.
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Values present.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// One past the highest index in use or freed: every value's index is below it.
    pub(crate) fn end(&self) -> usize {
        self.entries.len()
    }

    /// The index the next `insert` will use.
    pub(crate) fn next_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.entries.len())
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.entries[i] = Some(value);
                i
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.entries.get(i)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.entries.get_mut(i)?.as_mut()
    }

    pub(crate) fn remove(&mut self, i: usize) -> Option<T> {
        let value = self.entries.get_mut(i)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(value)
    }
}
