//! The talent table of a roster index as a compact binary file beside it,
//! so that a restart reads a million talents without parsing the index's
//! stored JSON. It is a cache of the index: written after each build and
//! commit, read only when its version matches, and replaced by the stored
//! documents whenever it is missing, of another version or damaged.
//!
//! Layout (little-endian): the magic `XWNTAB01`; the roster version, the
//! table length (ords, gaps included) and the chunk count; per chunk its
//! first ord, byte range and FxHash; then the chunks. A chunk holds, ord by
//! ord, a 0 for a gap or a 1 and a talent. Chunks are decoded in parallel.

use std::{
    fs,
    hash::Hasher,
    io::{self, Write},
    path::Path,
    sync::Arc,
};

use rustc_hash::FxHasher;

use crate::{
    model::divisions::DivisionCode,
    model::geo::GeoPoint,
    model::{Corps, Talent, Tier},
};

/// The file's name in an index directory.
pub(crate) const FILE: &str = "talents.bin";
const MAGIC: &[u8; 8] = b"XWNTAB01";
/// Ords per chunk: enough chunks to share among cores, few enough to index.
const CHUNK_ORDS: usize = 1 << 15;

/// The table of an index at `version`, by ord.
pub(crate) type Table = Vec<Option<Arc<Talent>>>;

fn hash(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    h.finish()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_point(out: &mut Vec<u8>, p: GeoPoint) {
    out.extend_from_slice(&p.lat.to_le_bytes());
    out.extend_from_slice(&p.lon.to_le_bytes());
}

fn encode(out: &mut Vec<u8>, t: &Talent) {
    out.push(1);
    put_str(out, &t.id);
    put_str(out, &t.name);
    put_str(out, &t.phone);
    out.push(t.tier as u8);
    out.push(t.corps.map_or(u8::MAX, |c| c as u8));
    out.extend_from_slice(&(t.specialties.len() as u32).to_le_bytes());
    for s in &t.specialties {
        put_str(out, s);
    }
    put_str(out, &t.skills);
    out.extend_from_slice(&t.division_code.as_u64().to_le_bytes());
    match t.given_point {
        Some(p) => {
            out.push(1);
            put_point(out, p);
        }
        None => out.push(0),
    }
    put_point(out, t.point);
    out.extend_from_slice(&t.capacity.to_le_bytes());
    out.push(u8::from(t.active));
}

/// Writes the table of `len` ords (`talent(ord)`, `None` for a gap) as the
/// file of `version` in `dir`: to a temporary file, synced, then renamed.
pub(crate) fn write<'a>(
    dir: &Path,
    version: u64,
    len: usize,
    talent: impl Fn(usize) -> Option<&'a Talent>,
) -> io::Result<()> {
    let mut chunks = Vec::new();
    for first in (0..len).step_by(CHUNK_ORDS) {
        let mut bytes = Vec::new();
        for ord in first..(first + CHUNK_ORDS).min(len) {
            match talent(ord) {
                Some(t) => encode(&mut bytes, t),
                None => bytes.push(0),
            }
        }
        chunks.push((first as u64, bytes));
    }
    let mut head = Vec::with_capacity(32 + chunks.len() * 32);
    head.extend_from_slice(MAGIC);
    for n in [version, len as u64, chunks.len() as u64] {
        head.extend_from_slice(&n.to_le_bytes());
    }
    let mut at = (32 + chunks.len() * 32) as u64;
    for (first, bytes) in &chunks {
        let end = at + bytes.len() as u64;
        for n in [*first, at, end, hash(bytes)] {
            head.extend_from_slice(&n.to_le_bytes());
        }
        at = end;
    }
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = io::BufWriter::new(fs::File::create(&tmp)?);
    file.write_all(&head)?;
    for (_, bytes) in &chunks {
        file.write_all(bytes)?;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::rename(&tmp, dir.join(FILE))
}

/// Reads the table of `version` from `dir`: `None` when the file is
/// missing, holds another version, or fails its checks.
pub(crate) fn read(dir: &Path, version: u64) -> io::Result<Option<Table>> {
    let bytes = match fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(decode(&bytes, version))
}

fn decode(bytes: &[u8], version: u64) -> Option<Table> {
    let mut head = Reader { bytes, at: 0 };
    if head.take(8)? != MAGIC || head.u64()? != version {
        return None;
    }
    let len = usize::try_from(head.u64()?).ok()?;
    let count = usize::try_from(head.u64()?).ok()?;
    if count != len.div_ceil(CHUNK_ORDS) {
        return None;
    }
    let mut chunks = Vec::with_capacity(count);
    for i in 0..count {
        let (first, start, end, sum) = (head.u64()?, head.u64()?, head.u64()?, head.u64()?);
        let range = usize::try_from(start).ok()?..usize::try_from(end).ok()?;
        let chunk = bytes.get(range)?;
        if first != (i * CHUNK_ORDS) as u64 {
            return None;
        }
        let ords = CHUNK_ORDS.min(len - i * CHUNK_ORDS);
        chunks.push((chunk, ords, sum));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts: Vec<Option<Vec<Table>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let chunks = &chunks;
                scope.spawn(move || {
                    chunks
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|&(chunk, ords, sum)| decode_chunk(chunk, ords, sum))
                        .collect::<Option<Vec<Table>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    // Chunk i was decoded by thread i % threads, as its (i / threads)-th.
    let mut parts: Vec<std::vec::IntoIter<Table>> = parts
        .into_iter()
        .map(|p| p.map(Vec::into_iter))
        .collect::<Option<_>>()?;
    let mut table = Table::with_capacity(len);
    for i in 0..count {
        table.extend(parts[i % threads].next()?);
    }
    Some(table)
}

fn decode_chunk(chunk: &[u8], ords: usize, sum: u64) -> Option<Table> {
    if hash(chunk) != sum {
        return None;
    }
    let mut r = Reader {
        bytes: chunk,
        at: 0,
    };
    let mut table = Table::with_capacity(ords);
    for _ in 0..ords {
        table.push(match r.u8()? {
            0 => None,
            1 => Some(Arc::new(r.talent()?)),
            _ => return None,
        });
    }
    (r.at == chunk.len()).then_some(table)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn f64(&mut self) -> Option<f64> {
        Some(f64::from_bits(self.u64()?))
    }

    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    fn point(&mut self) -> Option<GeoPoint> {
        Some(GeoPoint {
            lat: self.f64()?,
            lon: self.f64()?,
        })
    }

    fn talent(&mut self) -> Option<Talent> {
        let id = self.string()?;
        let name = self.string()?;
        let phone = self.string()?;
        let tier = *Tier::ALL.get(usize::from(self.u8()?))?;
        let corps = match self.u8()? {
            u8::MAX => None,
            c => Some(*Corps::ALL.get(usize::from(c))?),
        };
        let n = self.u32()? as usize;
        let mut specialties = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            specialties.push(self.string()?);
        }
        let skills = self.string()?;
        let division_code = DivisionCode::from_u64(self.u64()?);
        let given_point = match self.u8()? {
            0 => None,
            1 => Some(self.point()?),
            _ => return None,
        };
        Some(Talent {
            id,
            name,
            phone,
            tier,
            corps,
            specialties,
            skills,
            division_code,
            given_point,
            point: self.point()?,
            capacity: self.u32()?,
            active: match self.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talent(i: usize) -> Talent {
        Talent {
            id: format!("t-{i}"),
            name: format!("名{i}"),
            phone: if i.is_multiple_of(2) {
                "13800000000".into()
            } else {
                String::new()
            },
            tier: Tier::ALL[i % 3],
            corps: (!i.is_multiple_of(4)).then(|| Corps::ALL[i % 5]),
            specialties: (0..i % 3).map(|k| format!("苹果{k}")).collect(),
            skills: "嫁接、修剪".repeat(i % 2),
            division_code: DivisionCode::parse("610527106202").unwrap(),
            given_point: i.is_multiple_of(3).then_some(GeoPoint {
                lat: 34.5 + i as f64 * 1e-6,
                lon: 109.1,
            }),
            point: GeoPoint {
                lat: 34.5,
                lon: 109.1 - i as f64 * 1e-7,
            },
            capacity: i as u32 % 7,
            active: !i.is_multiple_of(5),
        }
    }

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("xwn-table-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_table_reads_back_as_written_gaps_and_all() {
        let d = dir("roundtrip");
        // More than two chunks, with gaps.
        let table: Table = (0..CHUNK_ORDS * 2 + 77)
            .map(|i| (i % 11 != 3).then(|| Arc::new(talent(i))))
            .collect();
        write(&d, 9, table.len(), |o| table[o].as_deref()).unwrap();
        let back = read(&d, 9).unwrap().expect("the file is read");
        assert_eq!(back, table);
        assert_eq!(read(&d, 10).unwrap(), None, "another version is refused");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_or_cut_file_is_refused_not_misread() {
        let d = dir("damaged");
        let table: Table = (0..500).map(|i| Some(Arc::new(talent(i)))).collect();
        write(&d, 3, table.len(), |o| table[o].as_deref()).unwrap();
        let path = d.join(FILE);
        let good = fs::read(&path).unwrap();
        for at in [0, 20, 100, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x5a;
            fs::write(&path, &bad).unwrap();
            assert_eq!(read(&d, 3).unwrap(), None, "byte {at} flipped");
        }
        fs::write(&path, &good[..good.len() - 9]).unwrap();
        assert_eq!(read(&d, 3).unwrap(), None, "cut short");
        fs::remove_file(&path).unwrap();
        assert_eq!(read(&d, 3).unwrap(), None, "missing");
        fs::remove_dir_all(&d).unwrap();
    }
}
