//! The `pgveil` binary: parses the command line and hands over to the library.
use std::process::ExitCode;

use clap::Parser;
use pgveil::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log_format);
    // This runtime runs the commands; for `serve`, the listener, the reloader and the metrics
    // endpoint (sessions run on their own threads, `pgveil::workers`). 8 MiB worker stacks:
    // libpg_query's parse tree of a deeply nested statement is decoded recursively (reloads
    // parse view definitions); with room on the stack the analyser need not switch stacks.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgveil: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgveil: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let server = pgveil::server::Server::bind(args.into_config()).await?;
            server.run(cli::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { rules, upstream } => {
            match pgveil::rules::check::check_dir(&rules, upstream.as_deref()) {
                Ok(summary) => {
                    println!("{summary}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e:#}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::HashPassword => {
            let pw = cli::read_password()?;
            anyhow::ensure!(!pw.is_empty(), "empty password");
            println!("{}", pgveil::session::scram::hash_password(&pw));
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(args) => {
            print!(
                "{}",
                pgveil::scan::run(&args.options(), args.out.as_deref()).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            rules,
            upstream,
            format,
        } => {
            print!(
                "{}",
                pgveil::report::run_report(&rules, upstream.as_deref(), format).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(cli::AuditCommand::Verify { files }) => match pgveil::audit::verify_files(&files) {
            Ok(report) => {
                println!("{report}");
                Ok(ExitCode::SUCCESS)
            }
            Err(broken) => {
                eprintln!("audit chain broken: {broken}");
                Ok(ExitCode::from(1))
            }
        },
        Command::Demo { listen } => {
            pgveil::demo::run(listen).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
