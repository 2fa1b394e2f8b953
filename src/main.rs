fn main() {
    // Output piped into `head` must end the process quietly, not panic in
    // println!: restore the default SIGPIPE action Rust's runtime ignores.
    // SAFETY: called before any other thread or signal use; SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(routecfg::cli::main(&argv));
}
