"""The figures of the conditions a result was measured under: interference, the machine's speed,
the timeline and the run's own bookkeeping (see :mod:`bench_support.metrics`)."""

from __future__ import annotations

from typing import List

from bench_support.metrics import LOWER, Metric

#: Units of figures derived from elapsed time (a share of it, for the stall fraction).
_TIMED_UNITS = ("s", "ms", "samples/s", "MB/s", "J", "mJ", "W", "%", "IOPS")


def family(name: str, rows) -> List[Metric]:
    """The vocabulary entries of family ``name``: (name, unit, better, meaning[, key_in groups]) rows."""
    out = []
    for row in rows:
        figure, unit, better, meaning, *rest = row
        key_in = rest[0] if rest else ()
        timed = unit in _TIMED_UNITS or figure == "stall_frac"
        out.append(Metric(figure, unit, name, better, meaning, tuple(key_in), timed))
    return out


CONDITIONS: List[Metric] = [
    *family(
        "interference",
        [
            ("foreign_cpu_share", "fraction", None, "CPU used by other processes during the rounds, of the capacity"),
            ("foreign_cpu_s", "s", None, "that CPU time: all CPUs' busy time minus this process tree's"),
            ("own_cpu_s", "s", None, "CPU time of this process and its children during the rounds"),
            ("foreign_cpu_unavailable", "text", None, "why the foreign share is not known (/proc counts no CPU time)"),
            ("steal_share", "fraction", None, "time the hypervisor ran other guests on our CPUs, of the capacity"),
            ("cpu_pressure_share", "fraction", None, "share of the window some task waited for a CPU (PSI)"),
            ("memory_pressure_share", "fraction", None, "share of the window some task stalled on memory (PSI)"),
            ("thermal_throttle_events", "count", None, "thermal throttle events of the CPUs during the rounds"),
            ("cpu_freq_min_mhz", "MHz", None, "lowest clock of the fastest CPU over the rounds"),
            ("cpu_freq_max_mhz", "MHz", None, "highest clock seen"),
            ("cpu_freq_limit_mhz", "MHz", None, "the CPUs' maximum clock (cpuinfo_max_freq)"),
            ("temp_max_c", "°C", None, "highest thermal-zone temperature over the rounds"),
            ("throttled", "flag", None, "a throttle event, or the fastest CPU below 90 % of its maximum"),
            ("throttled_unavailable", "text", None, "why throttling could not be judged"),
            ("sampler_cpu_s", "s", None, "CPU time of the suite's own sampling thread over the rounds"),
            ("sampler_cpu_share", "fraction", None, "that time over the window: an estimate of what sampling costs"),
        ],
    ),  # fmt: skip
    *family(
        "speed",
        [
            ("speed_probe_ms", "ms", None, "median time of a fixed torch workload run before and after"),
            ("speed_probe_iqr", "fraction", None, "that probe's interquartile range over its median"),
            ("speed_probe_ci_rel", "fraction", None, "the 95 % interval of the probe's median, half-width over it"),
        ],
    ),  # fmt: skip
    *family(
        "power_mode",
        [
            ("power_mode", "param", None, "--jetson-power-modes: the nvpmodel mode this result ran in"),
            ("power_mode_id", "count", None, "its nvpmodel id"),
            ("power_mode_settle_s", "s", None, "switch to clocks within the mode's caps (3 reads in a row)"),
            ("clocks_mhz", "record", None, "CPU clusters' and devfreq devices' clocks once settled"),
            ("devfreq_mhz", "record", None, "devfreq devices' clocks (the GPU) once settled"),
        ],
    ),  # fmt: skip
    *family(
        "timeline",
        [
            ("timeline", "record", None, "the rounds as series: t_s, rss_tree_mb, cpu_pct, read_mb_s, clock, power"),
            ("steps", "record", None, "--trace-steps: each step's fetch_s and compute_s, one list per epoch"),
        ],
    ),  # fmt: skip
    *family(
        "run",
        [
            ("rounds_measured", "count", None, "rounds pytest-benchmark timed"),
            ("rounds_warmup", "count", None, "untimed rounds before them"),
            ("validity", "record", None, "noisy / invalid flags and their reasons"),
            ("measured_around", "text", None, "plain benchmark fixture: what the memory and power windows span"),
        ],
    ),  # fmt: skip
    *family(
        "precision",
        [
            ("median_ci_low_s", "s", None, "low end of the 95 % confidence interval of the median round time"),
            ("median_ci_high_s", "s", None, "high end of that interval"),
            ("median_ci_rel", "fraction", LOWER, "the interval's larger half-width over the median"),
            ("median_ci_level", "fraction", None, "the interval's level (order statistics: its exact coverage)"),
            ("median_ci_method", "text", None, "order statistics, widened over trials where there were several"),
            ("median_ci_unavailable", "text", None, "why there is no interval (fewer than 6 rounds)"),
            (
                "between_trials_sd_log",
                "fraction",
                None,
                "sd of the log of a trial's median between processes, pooled over the module; widens the interval",
            ),
            ("between_trials_df", "count", None, "that spread's degrees of freedom (trials beyond the first, summed)"),
            (
                "precision_target_rel",
                "fraction",
                None,
                "the target for median_ci_rel the result is judged by (the profile's, or --precision-target)",
            ),
            ("round_budget_s", "s", None, "wall time the benchmark could spend on rounds beyond the profile's"),
            (
                "rounds_stopped",
                "text",
                None,
                "why the rounds stopped: precise, budget, out of reach, spread between trials, ...",
            ),
        ],
    ),  # fmt: skip
    *family(
        "trials",
        [
            ("trials", "count", None, "interleaved trials the benchmark was measured in (docs/methods.md)"),
            ("trial_rounds", "list", None, "measured rounds of each trial, in trial order (stats.data follows it)"),
            ("trial_medians_s", "list", None, "each trial's median round time"),
            ("figures_from_trial", "count", None, "the trial (1-based) whose figures are shown: the median trial's"),
        ],
    ),  # fmt: skip
]
