fn main() {
    println!("routecfg");
}
