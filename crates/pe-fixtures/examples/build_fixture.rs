//! Builds one fixture and prints the image and PDB paths:
//! `cargo run -p pe-fixtures --example build_fixture -- c clean`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["c", name] => pe_fixtures::c(name),
        ["rust", name] => pe_fixtures::rust(name),
        _ => {
            eprintln!("usage: build_fixture c|rust <name>");
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
