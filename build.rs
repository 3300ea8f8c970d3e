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
        table.push_str(&format!(
            "    ({name:?}, {:?}, \"\\\"{:016x}\\\"\", include_bytes!({:?})),\n",
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
