//! `cordon deploy TARGET [--out DIR] [--force]`: print or write the deployment files.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use config::Paths;

use crate::setup::load_config;
use ::deploy::{Source, Target, Written};

pub async fn deploy(target: Target, out: Option<&Path>, force: bool) -> Result<ExitCode> {
    let files = ::deploy::generate(target, || -> Result<Source> {
        let paths = Paths::from_env();
        Ok(Source {
            config: load_config(&paths)?,
            config_file: paths.config_file,
        })
    })
    .await?;
    let Some(dir) = out else {
        let mut stdout = std::io::stdout().lock();
        ::deploy::print(&files, &mut stdout)?;
        stdout.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    for written in ::deploy::write_dir(&files, dir, force)? {
        match written {
            Written::Created(p) => println!("wrote {}", p.display()),
            Written::Replaced(p) => println!("replaced {}", p.display()),
            Written::Unchanged(p) => println!("unchanged {}", p.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
