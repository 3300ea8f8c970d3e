//! Compiles `proto/` into Rust with a pure-Rust protobuf compiler (protox), so
//! that a fresh machine needs no `protoc`, writes the descriptor set that
//! server reflection and the Connect transcoder use, and writes the table of
//! the pages under `web/` that the binary embeds.

use std::{
    env,
    hash::{Hash, Hasher},
    path::{Path, PathBuf},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/xingweinong/v1/xwn.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("xwn_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    embed_web(Path::new("web"), &out_dir.join("web_files.rs"))?;
    Ok(())
}

/// Writes `(path under web/, content type, ETag, bytes)` for every file
/// under `web/`, so a new page or asset needs no code change.
fn embed_web(web: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = out.parent().ok_or("no OUT_DIR")?;
    println!("cargo:rerun-if-changed={}", web.display());
    let mut files = Vec::new();
    if web.exists() {
        walk(web, &mut files)?;
    }
    files.sort();
    let mut table = String::from("&[\n");
    for path in files {
        // Directories are watched too, so an added file triggers a rebuild.
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .strip_prefix(web)?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let bytes = std::fs::read(&path)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let absolute = std::fs::canonicalize(&path)?;
        let gzipped = match gzip_worth_it(&name, &bytes)? {
            Some(gz) => {
                let gz_path = out_dir.join(format!("web-{:016x}.gz", hasher.finish()));
                std::fs::write(&gz_path, gz)?;
                format!("Some(include_bytes!({:?}))", gz_path.display().to_string())
            }
            None => "None".to_string(),
        };
        table.push_str(&format!(
            "    ({name:?}, {:?}, \"W/\\\"{:016x}\\\"\", include_bytes!({:?}), {gzipped}),\n",
            content_type(&name),
            hasher.finish(),
            absolute.display().to_string(),
        ));
    }
    table.push_str("]\n");
    std::fs::write(out, table)?;
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The gzip of a text file (pages, scripts, styles, SVG), when it saves at
/// least a tenth: a weak village connection then loads a page in about a
/// third of the bytes.
fn gzip_worth_it(name: &str, bytes: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Write;
    let text = content_type(name).starts_with("text/") || name.ends_with(".svg");
    if !text {
        return Ok(None);
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    let gz = encoder.finish()?;
    Ok((gz.len() * 10 <= bytes.len() * 9).then_some(gz))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}
