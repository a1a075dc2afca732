//! `ember-cli`: run Redis commands on an Ember topology. `ember-cli --help`
//! lists the flags; the program itself is `ember_client::cli`.

fn main() -> std::process::ExitCode {
    ember_client::cli::main()
}
