//! Where streamed output goes: stdout, which its reader may close (`| head`), or a file
//! that appears only once it is complete.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::cli::Failure;
use crate::cli::output::ExitClass;

/// Whether stdout still takes lines: a closed pipe (`| head`) ends the command quietly.
pub(super) fn still_open(written: io::Result<()>) -> Result<bool, Failure> {
    match written {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(Failure::new(ExitClass::Internal, format!("cannot write to stdout: {error}"))),
    }
}

/// Where an export goes: stdout, or a file written beside its final name and renamed
/// into place when complete (so a failed export leaves no half file behind).
pub(super) enum Sink {
    Stdout(io::BufWriter<io::Stdout>),
    File { temporary: PathBuf, target: PathBuf, writer: io::BufWriter<std::fs::File> },
}

impl Sink {
    pub(super) fn file(target: &Path) -> Result<Sink, Failure> {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.is_empty() {
            return Err(Failure::invalid(format!("-o {}: give a file name", target.display())));
        }
        let temporary = target.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let file = std::fs::File::create(&temporary)
            .map_err(|e| Failure::invalid(format!("cannot write {}: {e}", target.display())))?;
        Ok(Sink::File { temporary, target: target.to_owned(), writer: io::BufWriter::new(file) })
    }

    pub(super) fn write_failure(&self, error: &io::Error) -> Failure {
        match self {
            Sink::Stdout(_) => Failure::new(ExitClass::Internal, format!("cannot write to stdout: {error}")),
            Sink::File { target, .. } => {
                Failure::new(ExitClass::Internal, format!("cannot write {}: {error}", target.display()))
            }
        }
    }

    /// Flushes and puts the file in place; `false` if stdout was closed by its reader.
    pub(super) fn finish(self) -> Result<bool, Failure> {
        match self {
            Sink::Stdout(mut writer) => still_open(writer.flush()),
            Sink::File { temporary, target, writer } => {
                let done = writer
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|file| file.sync_all())
                    .and_then(|()| std::fs::rename(&temporary, &target));
                done.map(|()| true).map_err(|error| {
                    let _ = std::fs::remove_file(&temporary);
                    Failure::new(ExitClass::Internal, format!("cannot write {}: {error}", target.display()))
                })
            }
        }
    }

    /// Leaves nothing behind after a failure.
    pub(super) fn abandon(self) {
        if let Sink::File { temporary, writer, .. } = self {
            drop(writer);
            let _ = std::fs::remove_file(temporary);
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(writer) => writer.write(buf),
            Sink::File { writer, .. } => writer.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(writer) => writer.flush(),
            Sink::File { writer, .. } => writer.flush(),
        }
    }
}
