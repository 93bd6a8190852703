//! Hashing off the critical path: a thread per session that hashes what the I/O thread
//! hands it (buffers it has just written to disk, or a range of a file it reads itself),
//! so reading the socket, writing the file and hashing overlap when there is a core to
//! spare, and cost no more than doing them in turn when there is not.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::proto::transfer::{Algo, Hasher};

/// Bytes per buffer: big enough that each system call and each hasher call moves a lot,
/// small enough that a buffer is still in the CPU's L2 cache when the hasher reads it.
pub(crate) const CHUNK: usize = 256 * 1024;

/// Buffers in flight between the I/O thread and the hasher (the bounded queue).
const DEPTH: usize = 4;

enum Job {
    Begin(Algo),
    /// Hash the first `len` bytes of the file.
    File(Arc<File>, u64),
    /// Hash the first `len` bytes of the buffer, then give it back.
    Bytes(Vec<u8>, usize),
    Finish,
}

/// The hashing thread and its queues. Dropping it stops the thread.
pub(crate) struct HashPipe {
    jobs: Option<SyncSender<Job>>,
    free: Receiver<Vec<u8>>,
    results: Receiver<io::Result<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl HashPipe {
    /// Starts the thread with its pool of buffers.
    pub(crate) fn new() -> io::Result<HashPipe> {
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(DEPTH + 2);
        let (free_tx, free_rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (res_tx, res_rx) = sync_channel(1);
        for _ in 0..DEPTH {
            // Cannot block: the channel holds DEPTH.
            let _ = free_tx.send(vec![0; CHUNK]);
        }
        let thread = std::thread::Builder::new()
            .name("sockit-hash".into())
            .spawn(move || run(jobs_rx, free_tx, res_tx))?;
        Ok(HashPipe {
            jobs: Some(jobs_tx),
            free: free_rx,
            results: res_rx,
            thread: Some(thread),
        })
    }

    /// Starts a new digest.
    pub(crate) fn begin(&self, algo: Algo) {
        self.send(Job::Begin(algo));
    }

    /// Hashes the first `len` bytes of `file` (read by the hashing thread itself).
    pub(crate) fn file(&self, file: Arc<File>, len: u64) {
        if len > 0 {
            self.send(Job::File(file, len));
        }
    }

    /// A free buffer of [`CHUNK`] bytes; waits while the hasher is behind.
    pub(crate) fn buffer(&self) -> Vec<u8> {
        self.free.recv().unwrap_or_else(|_| vec![0; CHUNK])
    }

    /// Hashes `buf[..len]`; the buffer comes back through [`HashPipe::buffer`].
    pub(crate) fn bytes(&self, buf: Vec<u8>, len: usize) {
        self.send(Job::Bytes(buf, len));
    }

    /// Returns a buffer unused.
    pub(crate) fn give_back(&self, buf: Vec<u8>) {
        self.send(Job::Bytes(buf, 0));
    }

    /// The digest of everything since [`HashPipe::begin`].
    pub(crate) fn finish(&self) -> io::Result<Vec<u8>> {
        self.send(Job::Finish);
        self.results
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("hashing thread ended")))
    }

    fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // A dead thread shows up as an error from `finish`.
            let _ = jobs.send(job);
        }
    }
}

impl Drop for HashPipe {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(jobs: Receiver<Job>, free: SyncSender<Vec<u8>>, results: SyncSender<io::Result<Vec<u8>>>) {
    let mut hasher: Option<Hasher> = None;
    let mut failed: Option<io::Error> = None;
    let mut scratch = Vec::new();
    for job in jobs {
        match job {
            Job::Begin(algo) => {
                hasher = Some(algo.hasher());
                failed = None;
            }
            Job::File(file, len) => {
                if let (Some(h), None) = (hasher.as_mut(), &failed) {
                    scratch.resize(4 * CHUNK, 0);
                    if let Err(e) = hash_file(h, &file, len, &mut scratch) {
                        failed = Some(e);
                    }
                }
            }
            Job::Bytes(buf, len) => {
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf[..len]);
                }
                let _ = free.send(buf);
            }
            Job::Finish => {
                let result = match (hasher.take(), failed.take()) {
                    (_, Some(e)) => Err(e),
                    (Some(h), None) => Ok(h.finalize()),
                    (None, None) => Err(io::Error::other("digest finished before it began")),
                };
                if results.send(result).is_err() {
                    return;
                }
            }
        }
    }
}

/// Hashes bytes `[0, len)` of `file`; a file shorter than `len` is an error.
fn hash_file(h: &mut Hasher, file: &File, len: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut pos = 0u64;
    while pos < len {
        let want = buf
            .len()
            .min(usize::try_from(len - pos).unwrap_or(usize::MAX));
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file shrank to {pos} bytes while being hashed"),
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_and_file_ranges_hash_as_one_stream() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7 % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("sockit-hash-{}", std::process::id()));
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let pipe = HashPipe::new().unwrap();
        for algo in Algo::ALL {
            let mut want = algo.hasher();
            want.update(&data);
            let want = want.finalize();

            // Prefix from the file, the rest through buffers.
            pipe.begin(algo);
            pipe.file(file.clone(), 1000);
            for chunk in data[1000..].chunks(CHUNK - 5) {
                let mut buf = pipe.buffer();
                buf[..chunk.len()].copy_from_slice(chunk);
                pipe.bytes(buf, chunk.len());
            }
            assert_eq!(pipe.finish().unwrap(), want, "{algo}");

            // All from the file.
            pipe.begin(algo);
            pipe.file(file.clone(), data.len() as u64);
            assert_eq!(pipe.finish().unwrap(), want, "{algo}");
        }
        // A range past the end of the file is an error, and the next digest is clean.
        pipe.begin(Algo::Md5);
        pipe.file(file.clone(), data.len() as u64 + 1);
        assert!(pipe.finish().is_err());
        pipe.begin(Algo::Md5);
        assert!(pipe.finish().is_ok());
        std::fs::remove_file(&path).unwrap();
    }
}
