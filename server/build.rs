//! The binary embeds the built app (`dist/`, via rust-embed). trunk writes new file names on
//! every build, which the embed macro cannot know to watch: rebuild whenever `dist/` changes,
//! so a binary never serves a stale app.

fn main() {
    println!("cargo:rerun-if-changed=../dist");
    println!("cargo:rerun-if-changed=../plans");
}
