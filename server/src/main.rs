//! The `cutover` binary: everything lives in the library; this only hands over to the CLI.

// jemalloc touches only the pages it hands out and returns freed ones: each idle connection's
// two 8 KiB hyper buffers cost the bytes written, not whole pages plus fragmentation.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    cutover_server::cli::main()
}
