//! A look at SQLite's write-ahead log before SQLite recovers it.
//!
//! SQLite treats the first frame whose checksum fails as the end of the log, by design: a
//! torn write at the tail after a power loss looks just like that. But damage in the middle
//! looks like it too, and SQLite then drops every transaction after it without a word — and
//! the next append reuses their ids for new events. The log's format tells the two apart:
//! frames of the same log generation carry its salts, and with synchronous FULL at most one
//! transaction (the one in flight) can be torn. So committed frames of the current
//! generation after the break, from two or more transactions, mean synced commits would be
//! lost: the open is refused and the files are left as they were. Damage that destroys the
//! commit frame of the next-to-last transaction leaves one commit after it and passes for a
//! torn tail. The other way, a power loss under synchronous NORMAL can tear several unsynced
//! transactions, which is refused like damage (`truncate_damaged_log` accepts it).

use std::io::Read;
use std::path::{Path, PathBuf};

const HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// SQLite's log checksum over `data` (a multiple of 8 bytes), continuing from `s`.
fn checksum(data: &[u8], big_endian: bool, mut s: (u32, u32)) -> (u32, u32) {
    for pair in data.chunks_exact(8) {
        let word = |w: &[u8]| {
            let w = [w[0], w[1], w[2], w[3]];
            if big_endian {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }
        };
        s.0 = s.0.wrapping_add(word(&pair[..4])).wrapping_add(s.1);
        s.1 = s.1.wrapping_add(word(&pair[4..])).wrapping_add(s.0);
    }
    s
}

/// The log file of the database at `db`.
pub(crate) fn log_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// The database's page size from its header, if the file has one.
fn page_size(db: &Path) -> Option<usize> {
    let mut head = [0u8; 100];
    let mut f = std::fs::File::open(db).ok()?;
    std::io::Read::read_exact(&mut f, &mut head).ok()?;
    if &head[..16] != b"SQLite format 3\0" {
        return None;
    }
    match u16::from_be_bytes([head[16], head[17]]) {
        1 => Some(65_536),
        n if n >= 512 && n.is_power_of_two() => Some(usize::from(n)),
        _ => None,
    }
}

/// Damage found in a log: where SQLite would stop reading, and how many committed
/// transactions of the same generation follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogDamage {
    pub(crate) frame: usize,
    pub(crate) lost_commits: usize,
    pub(crate) header: bool,
}

impl LogDamage {
    pub(crate) fn describe(&self, log: &Path) -> String {
        let at = if self.header {
            "in its header".to_owned()
        } else {
            format!("at frame {}", self.frame + 1)
        };
        format!(
            "the write-ahead log {} is damaged {at}: {} committed transactions from there on \
             would be lost. Nothing was changed; to open the store without them (as SQLite \
             alone would), open it with `SqliteOptions::truncate_damaged_log`",
            log.display(),
            self.lost_commits
        )
    }
}

/// Reads the log beside `db` and reports damage that would silently cut it; `None` when the
/// log is sound, absent, or ends as a crash can leave it. Reads one frame at a time.
pub(crate) fn inspect(db: &Path) -> std::io::Result<Option<LogDamage>> {
    let log = match std::fs::File::open(log_path(db)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(page) = page_size(db) else {
        return Ok(None);
    };
    find_damage(std::io::BufReader::with_capacity(1 << 16, log), page)
}

/// Fills `buf` from `r`; `false` at the end of the input (a partial last frame included).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn find_damage(mut log: impl Read, page: usize) -> std::io::Result<Option<LogDamage>> {
    let mut header = [0u8; HEADER];
    if !read_full(&mut log, &mut header)? {
        return Ok(None);
    }
    let magic = be32(&header, 0);
    let big_endian = magic & 1 == 1;
    let header_ok = magic & !1 == 0x377f_0682
        && be32(&header, 8) as usize == page
        && checksum(&header[..24], big_endian, (0, 0)) == (be32(&header, 24), be32(&header, 28));
    // SQLite ignores a log whose header is damaged: all of it is cut. Its frames still carry
    // the salts of their generation, those of the first frame.
    let mut salts: Option<[u8; 8]> = None;
    if header_ok {
        salts = Some(header_bytes(&header));
    }
    let mut sum = (be32(&header, 24), be32(&header, 28));
    let mut ends_at = (!header_ok).then_some(0);
    let mut cut_commits = 0;
    let mut frame = vec![0u8; FRAME_HEADER + page];
    let mut i = 0;
    while read_full(&mut log, &mut frame)? {
        let f = frame.as_slice();
        let current = *salts.get_or_insert_with(|| frame_salts(f));
        let ours = frame_salts(f) == current;
        if ends_at.is_none() {
            // The log ends at a frame of another generation or with a bad checksum.
            let next = checksum(
                &f[FRAME_HEADER..],
                big_endian,
                checksum(&f[..8], big_endian, sum),
            );
            sum = next;
            if !ours || next != (be32(f, 16), be32(f, 20)) {
                ends_at = Some(i);
            }
        }
        // Beyond its true end a log holds only frames of older generations: a committed
        // frame of this one there was cut off, by damage or by a crash tearing the last
        // transaction.
        if ends_at.is_some() && ours && be32(f, 4) != 0 {
            cut_commits += 1;
        }
        i += 1;
    }
    // One transaction may be torn by a crash; two cannot be.
    Ok(ends_at.filter(|_| cut_commits >= 2).map(|frame| LogDamage {
        frame,
        lost_commits: cut_commits,
        header: !header_ok,
    }))
}

fn header_bytes(header: &[u8; HEADER]) -> [u8; 8] {
    let mut s = [0u8; 8];
    s.copy_from_slice(&header[16..24]);
    s
}

fn frame_salts(frame: &[u8]) -> [u8; 8] {
    let mut s = [0u8; 8];
    s.copy_from_slice(&frame[8..16]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 512;

    /// A log of `commits` one-frame transactions, as SQLite writes it (little-endian sums).
    fn log(commits: usize) -> Vec<u8> {
        let mut out = vec![0u8; HEADER];
        out[..4].copy_from_slice(&0x377f_0682u32.to_be_bytes());
        out[4..8].copy_from_slice(&3_007_000u32.to_be_bytes());
        out[8..12].copy_from_slice(&(PAGE as u32).to_be_bytes());
        out[16..24].copy_from_slice(b"saltsalt");
        let mut sum = checksum(&out[..24], false, (0, 0));
        out[24..28].copy_from_slice(&sum.0.to_be_bytes());
        out[28..32].copy_from_slice(&sum.1.to_be_bytes());
        for i in 0..commits {
            let mut f = vec![0u8; FRAME_HEADER + PAGE];
            f[..4].copy_from_slice(&(i as u32 + 2).to_be_bytes());
            f[4..8].copy_from_slice(&(i as u32 + 3).to_be_bytes());
            f[8..16].copy_from_slice(b"saltsalt");
            f[FRAME_HEADER..].fill(i as u8 + 1);
            sum = checksum(&f[FRAME_HEADER..], false, checksum(&f[..8], false, sum));
            f[16..20].copy_from_slice(&sum.0.to_be_bytes());
            f[20..24].copy_from_slice(&sum.1.to_be_bytes());
            out.extend(f);
        }
        out
    }

    fn damage(log: &[u8]) -> Option<LogDamage> {
        find_damage(log, PAGE).expect("reading a slice")
    }

    fn byte_of_frame(i: usize) -> usize {
        HEADER + i * (FRAME_HEADER + PAGE) + FRAME_HEADER + 7
    }

    #[test]
    fn a_sound_log_passes() {
        assert_eq!(damage(&log(5)), None);
        assert_eq!(damage(&log(0)), None);
        assert_eq!(damage(&[]), None);
    }

    #[test]
    fn damage_in_the_middle_is_found() {
        let mut l = log(6);
        l[byte_of_frame(2)] ^= 1;
        assert_eq!(
            damage(&l),
            Some(LogDamage {
                frame: 2,
                lost_commits: 4,
                header: false
            })
        );
    }

    #[test]
    fn a_torn_last_transaction_is_what_a_crash_leaves() {
        let mut l = log(6);
        l[byte_of_frame(5)] ^= 1;
        assert_eq!(damage(&l), None);
        // A half-written last frame too.
        let l = log(6);
        assert_eq!(damage(&l[..l.len() - 100]), None);
    }

    #[test]
    fn a_damaged_salt_in_a_frame_is_found() {
        let mut l = log(6);
        l[HEADER + 2 * (FRAME_HEADER + PAGE) + 9] ^= 4;
        assert!(damage(&l).is_some_and(|d| d.frame == 2 && d.lost_commits == 3));
    }

    #[test]
    fn a_damaged_header_is_found() {
        let mut l = log(3);
        l[17] ^= 0x40;
        assert!(damage(&l).is_some_and(|d| d.header && d.lost_commits == 3));
    }

    #[test]
    fn frames_of_an_older_generation_end_the_log() {
        let mut l = log(6);
        // A restarted log: new salts in the header over the old frames.
        l[16..24].copy_from_slice(b"newsalts");
        let sum = checksum(&l[..24], false, (0, 0));
        l[24..28].copy_from_slice(&sum.0.to_be_bytes());
        l[28..32].copy_from_slice(&sum.1.to_be_bytes());
        assert_eq!(damage(&l), None);
    }
}
