//! `supctl logs -n N`: the last records of some log files, read back from disk.
//!
//! Owns reading log files backwards and reading rotated ones (plain or gzip). Blocking:
//! call it from a thread, never from the event loop. Never writes, and never holds more
//! than the records asked for plus one read block.
//!
//! For each current file the newest records are read from its end backwards, block by
//! block, so a large file costs only what is asked for. When the current file holds fewer
//! than asked for, its newest rotated file (`<file>.1` or `<file>.1.gz`, which must be
//! read from its start) supplies the rest. Records of several files (an app's split
//! files, or several apps) are merged by time; the records of one file keep its order.
//! Lines that are not records (a line torn by a failed write) are skipped.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use memchr::memrchr_iter;

use super::record::{parse_line, Filter, Record};
use super::rotate::rotated_name;

/// How much of a file is read at a time, backwards.
const BLOCK: usize = 64 * 1024;

/// The last `n` records passing `filter` in the log files `paths` (an app's current files,
/// from [`super::Logs::paths`]; any number of them) and, where needed, in each one's
/// newest rotated file. Oldest first. A file that does not exist holds no records.
pub fn tail(paths: &[PathBuf], filter: &Filter, n: usize) -> io::Result<Vec<Record>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut per_file = Vec::with_capacity(paths.len());
    for path in paths {
        let mut records = match File::open(path) {
            Ok(file) => last_in_file(&file, filter, n)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        if records.len() < n {
            let mut older = last_rotated(path, filter, n - records.len())?;
            older.append(&mut records);
            records = older;
        }
        per_file.push(records);
    }
    Ok(merge(per_file, n))
}

/// The newest rotated file of `path`: the plain one if both exist (a compression that was
/// interrupted before deleting it), else the compressed one.
fn last_rotated(path: &Path, filter: &Filter, n: usize) -> io::Result<Vec<Record>> {
    match File::open(rotated_name(path, 1, false)) {
        Ok(file) => return last_in_file(&file, filter, n),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    match File::open(rotated_name(path, 1, true)) {
        Ok(file) => last_in_stream(GzDecoder::new(file), filter, n),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The last `n` records of a file, reading it backwards from its end.
fn last_in_file(file: &File, filter: &Filter, n: usize) -> io::Result<Vec<Record>> {
    let mut newest_first = Vec::new();
    let keep = |line: &[u8], out: &mut Vec<Record>| {
        if let Some(record) = parse_line(line).filter(|r| filter.accepts(r)) {
            out.push(record);
        }
    };
    let mut pos = file.metadata()?.len();
    // The start of a line whose beginning lies before `pos`, carried to the next block.
    let mut carry: Vec<u8> = Vec::new();
    while pos > 0 && newest_first.len() < n {
        let len = BLOCK.min(usize::try_from(pos).unwrap_or(BLOCK));
        pos -= len as u64;
        let mut block = vec![0u8; len];
        file.read_exact_at(&mut block, pos)?;
        block.extend_from_slice(&carry);
        let mut end = block.len();
        for nl in memrchr_iter(b'\n', &block) {
            if nl + 1 < end {
                keep(&block[nl + 1..end], &mut newest_first);
                if newest_first.len() == n {
                    break;
                }
            }
            end = nl;
        }
        block.truncate(end);
        carry = block;
    }
    if pos == 0 && newest_first.len() < n && !carry.is_empty() {
        keep(&carry, &mut newest_first);
    }
    newest_first.reverse();
    Ok(newest_first)
}

/// The last `n` records of a stream read from its start (a gzip file).
fn last_in_stream(stream: impl Read, filter: &Filter, n: usize) -> io::Result<Vec<Record>> {
    let mut reader = BufReader::with_capacity(BLOCK, stream);
    let mut last = VecDeque::with_capacity(n.min(4096));
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Some(record) = parse_line(&line).filter(|r| filter.accepts(r)) {
            if last.len() == n {
                last.pop_front();
            }
            last.push_back(record);
        }
    }
    Ok(last.into())
}

/// Merges lists each in its own order by time (the earliest head first, ties to the
/// earlier list) and keeps the last `n`.
fn merge(lists: Vec<Vec<Record>>, n: usize) -> Vec<Record> {
    let mut lists: Vec<VecDeque<Record>> = lists.into_iter().map(VecDeque::from).collect();
    let total: usize = lists.iter().map(VecDeque::len).sum();
    let mut out = Vec::with_capacity(total);
    loop {
        let next = lists
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.front().map(|r| (r.ts_ms, i)))
            .min();
        match next.and_then(|(_, i)| lists[i].pop_front()) {
            Some(record) => out.push(record),
            None => break,
        }
    }
    let skip = out.len().saturating_sub(n);
    out.drain(..skip);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use crate::logs::tests::TempDir;
    use crate::logs::Stream;
    use std::io::Write;

    fn rec(ms: i64, stream: Stream, msg: &str) -> Record {
        Record {
            ts_ms: ms,
            app: "a".into(),
            instance: Some(0),
            pid: None,
            stream,
            msg: msg.as_bytes().to_vec(),
            cont: false,
            embedded: false,
        }
    }

    fn text(records: &[Record]) -> Vec<u8> {
        records.iter().flat_map(Record::to_text).collect()
    }

    fn msgs(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.msg).into_owned())
            .collect()
    }

    #[test]
    fn backwards_reading_across_blocks_and_long_lines() {
        let tmp = TempDir::new("tail-back");
        let path = tmp.0.join("a.log");
        // Lines of every length around the block size, some longer than a block.
        let records: Vec<Record> = (0..300)
            .map(|i| {
                let len = (i * 997) % (3 * BLOCK);
                rec(i as i64, Stream::Out, &format!("{i} {}", "x".repeat(len)))
            })
            .collect();
        let mut bytes = text(&records);
        // A torn line is skipped; a last line without '\n' is still read.
        bytes.extend_from_slice(b"2026-11-23T03:4\n");
        bytes.extend_from_slice(&rec(300, Stream::Err, "no newline").to_text());
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let all = Filter::default();
        for n in [1, 2, 7, 150, 301, 1000] {
            let got = tail(std::slice::from_ref(&path), &all, n).unwrap();
            let mut want = records.clone();
            want.push(rec(300, Stream::Err, "no newline"));
            let want = &want[want.len().saturating_sub(n)..];
            assert_eq!(got, want, "n = {n}");
        }
        let err = Filter {
            stream: Some(Stream::Err),
            ..Filter::default()
        };
        assert_eq!(
            msgs(&tail(std::slice::from_ref(&path), &err, 5).unwrap()),
            ["no newline"]
        );
        assert!(tail(&[path], &all, 0).unwrap().is_empty());
        assert!(tail(&[tmp.0.join("missing.log")], &all, 3)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn current_file_then_the_compressed_rotated_one() {
        let tmp = TempDir::new("tail-gz");
        let path = tmp.0.join("a.log");
        let old: Vec<Record> = (0..50)
            .map(|i| rec(i, Stream::Out, &format!("old {i}")))
            .collect();
        let new: Vec<Record> = (50..53)
            .map(|i| rec(i, Stream::Out, &format!("new {i}")))
            .collect();
        let mut gz = flate2::write::GzEncoder::new(
            File::create(rotated_name(&path, 1, true)).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(&text(&old)).unwrap();
        gz.finish().unwrap();
        // An older rotated file is never read.
        std::fs::write(rotated_name(&path, 2, false), text(&old)).unwrap();
        std::fs::write(&path, text(&new)).unwrap();
        let got = tail(std::slice::from_ref(&path), &Filter::default(), 5).unwrap();
        assert_eq!(
            msgs(&got),
            ["old 48", "old 49", "new 50", "new 51", "new 52"]
        );
        let got = tail(std::slice::from_ref(&path), &Filter::default(), 2).unwrap();
        assert_eq!(msgs(&got), ["new 51", "new 52"]);
        let got = tail(std::slice::from_ref(&path), &Filter::default(), 500).unwrap();
        assert_eq!(got.len(), 53);

        // A plain rotated file is preferred to a .gz of the same index.
        std::fs::write(rotated_name(&path, 1, false), text(&new[..1])).unwrap();
        let got = tail(&[path], &Filter::default(), 5).unwrap();
        assert_eq!(msgs(&got), ["new 50", "new 50", "new 51", "new 52"]);
    }

    #[test]
    fn split_files_merge_by_time() {
        let tmp = TempDir::new("tail-split");
        let out = tmp.0.join("a.out.log");
        let err = tmp.0.join("a.err.log");
        std::fs::write(
            &out,
            text(&[
                rec(1, Stream::Out, "o1"),
                rec(3, Stream::Out, "o3"),
                rec(3, Stream::Out, "o3b"),
            ]),
        )
        .unwrap();
        std::fs::write(
            &err,
            text(&[rec(2, Stream::Err, "e2"), rec(3, Stream::Err, "e3")]),
        )
        .unwrap();
        let got = tail(&[out, err], &Filter::default(), 4).unwrap();
        assert_eq!(msgs(&got), ["e2", "o3", "o3b", "e3"]);
    }
}
