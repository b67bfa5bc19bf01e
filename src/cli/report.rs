//! `okring report`'s arguments, as typed, and the front door: the table on
//! stdout, `merged.hgrm` and the spectrum plot where the user asked.

use std::path::PathBuf;

use crate::error::Error;
use crate::gate::Gates;
use crate::stats::write_hgrm;

/// Arguments of `okring report`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Inputs: .hlog interval logs, `okring load --json` results
    /// (okring.load/1), bench results.json (okring.bench/1).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Directory for merged.hgrm (and spectrum.svg unless --plot is given);
    /// created if missing [default: report-out/<UTC timestamp>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where to write the percentile-spectrum plot [default: DIR/spectrum.svg].
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Compare with this earlier run (same input kinds as FILE): print each
    /// percentile and the rate, old and new, with the change and the ratio.
    #[arg(long, value_name = "OLD")]
    pub baseline: Option<PathBuf>,
    /// Fail (exit 3) when a budget is broken: absolute ('p99>2ms',
    /// 'errors>0.1%', 'rps<50000'; errors and rps need okring load --json
    /// inputs) or relative to --baseline ('p99>+10%', 'rps<-5%').
    #[arg(long, value_name = "GATES")]
    pub fail_if: Option<String>,
}

/// `okring report`: merge ([`crate::report::merge_files`]), print the table,
/// write `DIR/merged.hgrm` and the plot (`--plot`, else `DIR/spectrum.svg`)
/// into `--out` or a new timestamped directory, as `okring bench` does.
/// Errors: any input's, or an output that cannot be written (the message
/// names the path).
pub fn run(args: &ReportArgs) -> Result<(), Error> {
    let gates = match &args.fail_if {
        Some(list) => Some(Gates::parse(list).map_err(Error::Usage)?),
        None => None,
    };
    let m = crate::report::merge_files(&args.files)?;
    for w in &m.warnings {
        crate::say!("okring: report: warning: {w}");
    }
    print!("{}", m.table());
    if let Some(t) = crate::report::timeline(&m.inputs)? {
        print!(
            "\nper {} s interval, lined up on the wall clock\n{}",
            t.slot_s,
            t.table()
        );
    }
    if let Some(c) = crate::report::combined(&m.inputs) {
        print!("\n{}", c.line());
    }
    let base = match &args.baseline {
        Some(old) => Some(crate::report::merge_files(std::slice::from_ref(old))?),
        None => None,
    };
    let (fig, counted) = m.figures();
    let base_fig = base.as_ref().map(|b| b.figures());
    if let Some((bf, base_counted)) = &base_fig {
        print!(
            "\n{}",
            crate::report::delta_table(bf, &fig, counted && *base_counted)
        );
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| super::timestamped_dir("report-out"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create --out {}: {e}", dir.display()))?;
    let hgrm = dir.join("merged.hgrm");
    let mut buf = Vec::new();
    write_hgrm(&mut buf, &m.merged, 5).map_err(|e| format!("formatting merged.hgrm: {e}"))?;
    std::fs::write(&hgrm, buf).map_err(|e| format!("cannot write {}: {e}", hgrm.display()))?;
    let plot = args
        .plot
        .clone()
        .unwrap_or_else(|| dir.join("spectrum.svg"));
    let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = m
        .rows()
        .into_iter()
        .map(|(l, h)| (l.to_string(), h))
        .collect();
    crate::plot::spectrum_svg(&plot, "latency by percentile", &series)?;
    crate::say!(
        "okring: report: wrote {} and {}",
        hgrm.display(),
        plot.display()
    );
    match gates {
        None => Ok(()),
        Some(g) => {
            let base_counted = base_fig.as_ref().is_none_or(|b| b.1);
            if g.needs_counts() && !(counted && base_counted) {
                return Err(Error::Usage(
                    "--fail-if: errors and rps gates need okring load --json inputs (interval logs carry latency only)".into(),
                ));
            }
            g.check_against(&fig, base_fig.as_ref().map(|b| &b.0))
        }
    }
}
