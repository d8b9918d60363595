//! A look at SQLite's write-ahead log before SQLite recovers it.
//!
//! SQLite treats the first frame whose checksum fails as the end of the log, by design: a
//! torn write at the tail after a power loss looks just like that. But damage in the middle
//! looks like it too, and SQLite then drops every transaction after it without a word — and
//! the next append reuses their ids for new events. The log's format tells the two apart:
//! frames of the same log generation carry its salts, and with synchronous FULL at most one
//! transaction (the one in flight) can be torn. So committed frames of the current
//! generation after the break, from two or more transactions, mean synced commits would be
//! lost: the open is refused and the files are left as they were.

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
            "the write-ahead log {} is damaged {at}: {} committed transactions after it would be \
             lost. Nothing was changed; to open the store without them (as SQLite alone would), \
             move that file away",
            log.display(),
            self.lost_commits
        )
    }
}

/// Reads the log beside `db` and reports damage that would silently cut it; `None` when the
/// log is sound, absent, or ends as a crash can leave it.
pub(crate) fn inspect(db: &Path) -> std::io::Result<Option<LogDamage>> {
    let log = match std::fs::read(log_path(db)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(page) = page_size(db) else {
        return Ok(None);
    };
    Ok(find_damage(&log, page))
}

fn find_damage(log: &[u8], page: usize) -> Option<LogDamage> {
    if log.len() < HEADER {
        return None;
    }
    let frame_len = FRAME_HEADER + page;
    let frames = (log.len() - HEADER) / frame_len;
    let frame = |i: usize| &log[HEADER + i * frame_len..HEADER + (i + 1) * frame_len];
    let is_commit = |f: &[u8]| be32(f, 4) != 0;
    let magic = be32(log, 0);
    let big_endian = magic & 1 == 1;
    let header_ok = magic & !1 == 0x377f_0682
        && be32(log, 8) as usize == page
        && checksum(&log[..24], big_endian, (0, 0)) == (be32(log, 24), be32(log, 28));
    let commits_with = |salts: &[u8], from: usize| {
        (from..frames)
            .map(frame)
            .filter(|f| &f[8..16] == salts && is_commit(f))
            .count()
    };
    if !header_ok {
        // SQLite ignores a log whose header is damaged. Its frames still carry the salts of
        // their generation: committed ones mean the log held transactions.
        if frames == 0 {
            return None;
        }
        let lost = commits_with(&frame(0)[8..16], 0);
        return (lost >= 2).then_some(LogDamage {
            frame: 0,
            lost_commits: lost,
            header: true,
        });
    }
    let salts = &log[16..24];
    let mut sum = (be32(log, 24), be32(log, 28));
    for i in 0..frames {
        let f = frame(i);
        if &f[8..16] != salts {
            // A frame of an older generation: the log ends here, as it should.
            return None;
        }
        let next = checksum(
            &f[FRAME_HEADER..],
            big_endian,
            checksum(&f[..8], big_endian, sum),
        );
        if next != (be32(f, 16), be32(f, 20)) {
            let lost = commits_with(salts, i);
            // One transaction may be torn by a crash; two cannot be.
            return (lost >= 2).then_some(LogDamage {
                frame: i,
                lost_commits: lost,
                header: false,
            });
        }
        sum = next;
    }
    None
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

    fn byte_of_frame(i: usize) -> usize {
        HEADER + i * (FRAME_HEADER + PAGE) + FRAME_HEADER + 7
    }

    #[test]
    fn a_sound_log_passes() {
        assert_eq!(find_damage(&log(5), PAGE), None);
        assert_eq!(find_damage(&log(0), PAGE), None);
        assert_eq!(find_damage(&[], PAGE), None);
    }

    #[test]
    fn damage_in_the_middle_is_found() {
        let mut l = log(6);
        l[byte_of_frame(2)] ^= 1;
        assert_eq!(
            find_damage(&l, PAGE),
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
        assert_eq!(find_damage(&l, PAGE), None);
        // A half-written last frame too.
        let l = log(6);
        assert_eq!(find_damage(&l[..l.len() - 100], PAGE), None);
    }

    #[test]
    fn a_damaged_header_is_found() {
        let mut l = log(3);
        l[17] ^= 0x40;
        assert!(find_damage(&l, PAGE).is_some_and(|d| d.header && d.lost_commits == 3));
    }

    #[test]
    fn frames_of_an_older_generation_end_the_log() {
        let mut l = log(6);
        // A restarted log: new salts in the header over the old frames.
        l[16..24].copy_from_slice(b"newsalts");
        let sum = checksum(&l[..24], false, (0, 0));
        l[24..28].copy_from_slice(&sum.0.to_be_bytes());
        l[28..32].copy_from_slice(&sum.1.to_be_bytes());
        assert_eq!(find_damage(&l, PAGE), None);
    }
}
