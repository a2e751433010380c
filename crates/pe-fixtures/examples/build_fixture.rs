//! Builds one fixture and prints the image and PDB paths:
//! `cargo run -p pe-fixtures --example build_fixture -- c clean` (`c NAME -O0` at another
//! optimisation level, `rust NAME FEATURE,FEATURE` with cargo features).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["c", name] => pe_fixtures::c(name),
        ["c", name, level] => pe_fixtures::c_at_level(name, level),
        ["rust", name] => pe_fixtures::rust(name),
        ["rust", name, features] => {
            let features: Vec<&str> = features.split(',').collect();
            pe_fixtures::rust_with_features(name, &features)
        }
        _ => {
            eprintln!("usage: build_fixture c <name> [-O0|-Os|-O2] | rust <name> [feature,...]");
            std::process::exit(2);
        }
    };
    match result {
        Ok(image) => println!("{}\n{}", image.image.display(), image.pdb.display()),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
