fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(routecfg::cli::main(&argv));
}
