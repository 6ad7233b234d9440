"""Rarity model: negative binomial counts of new destinations with empirical-Bayes shrinkage.

Each host's count of new destinations per window is modelled as negative
binomial. Its rate has a gamma prior fitted on the host's peer group (or the
fleet); the host's own windows update it. The dispersion is pooled over the
group. See docs/model.md for the derivation and the assumptions.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# Bounds that keep the moment estimates finite on degenerate groups: a group
# whose hosts never reached a new destination, or whose variance is below the
# Poisson variance.
MIN_RATE = 1e-3
MIN_SIZE = 0.05
MAX_SIZE = 1e4
# How far past the mean, in predictive standard deviations, the tail sums run.
TAIL_SPAN_SD = 60


def _log_pmf_step(k: Column, size: Column, mean: Column) -> Column:
    """log P(X = k + 1) - log P(X = k) for a negative binomial with this mean and size."""
    return F.log(k + size) - F.log(k + 1) + F.log(mean) - F.log(size + mean)


def _log_pmf_zero(size: Column, mean: Column) -> Column:
    return size * (F.log(size) - F.log(size + mean))


def _span(mean: Column, size: Column) -> Column:
    sd = F.sqrt(mean + mean * mean / size)
    return F.ceil(mean + F.lit(TAIL_SPAN_SD) * sd).cast("int") + F.lit(20)


def nb_quantile(mean: Column, size: Column, tail: float) -> Column:
    """Smallest integer q with P(X > q) <= `tail`, for X negative binomial (mean, size).

    Computed with built-in higher-order functions: the probabilities are
    accumulated in log space, so large counts do not underflow.
    """
    mean = F.greatest(mean, F.lit(MIN_RATE))
    initial = F.struct(
        _log_pmf_zero(size, mean).alias("lp"),
        F.lit(0.0).alias("cdf"),
        F.lit(None).cast("int").alias("q"),
    )

    def step(acc: Column, k: Column) -> Column:
        cdf = acc["cdf"] + F.exp(acc["lp"])
        found = F.when(acc["q"].isNull() & (cdf >= F.lit(1.0 - tail)), k).otherwise(acc["q"])
        return F.struct(
            (acc["lp"] + _log_pmf_step(k.cast("double"), size, mean)).alias("lp"),
            cdf.alias("cdf"),
            found.alias("q"),
        )

    result = F.aggregate(F.sequence(F.lit(0), _span(mean, size)), initial, step)
    return F.coalesce(result["q"], _span(mean, size)).cast("double")


def nb_tail(count: Column, mean: Column, size: Column) -> Column:
    """P(X >= count) for X negative binomial (mean, size), summed directly over the tail."""
    mean = F.greatest(mean, F.lit(MIN_RATE))
    count = count.cast("int")
    last = F.greatest(count, F.lit(0)) + _span(mean, size)
    initial = F.struct(_log_pmf_zero(size, mean).alias("lp"), F.lit(0.0).alias("tail"))

    def step(acc: Column, k: Column) -> Column:
        term = F.when(k >= count, F.exp(acc["lp"])).otherwise(F.lit(0.0))
        return F.struct(
            (acc["lp"] + _log_pmf_step(k.cast("double"), size, mean)).alias("lp"),
            (acc["tail"] + term).alias("tail"),
        )

    return F.least(F.aggregate(F.sequence(F.lit(0), last), initial, step)["tail"], F.lit(1.0))


def group_priors(hosts: DataFrame, effective_fraction: float) -> DataFrame:
    """Gamma prior of the rate and pooled negative binomial size, per `peer_group`.

    Needs per host `peer_group`, `windows_observed` (n), `new_sum` (sum of
    counts) and `new_sum_squares`. `effective_fraction` is the share of
    windows that are independent (slide / window length): overlapping windows
    repeat the same contacts, so the evidence of n windows is n times it.

    The prior's mean is the group's pooled rate. Its variance is the spread
    of host rates beyond what Poisson noise explains (method of moments).
    The variance has a floor of mean² / 4, so a group of identical hosts
    still leaves room for a host to differ. The size follows from the variance of the counts within
    hosts beyond their mean, pooled with weights n.
    """
    n = F.col("windows_observed").cast("double")
    rate = F.col("new_sum") / n
    within = F.col("new_sum_squares") / n - rate * rate
    per_host = hosts.where(F.col("windows_observed") > 0).select(
        "peer_group",
        n.alias("n"),
        F.col("new_sum").cast("double").alias("s"),
        rate.alias("rate"),
        within.alias("within"),
    )
    # Sums only, so a group as large as the fleet needs no per-host array.
    sums = per_host.groupBy("peer_group").agg(
        F.count(F.lit(1)).alias("prior_hosts"),
        F.sum("n").alias("_n"),
        F.sum("s").alias("_s"),
        F.sum(F.col("n") * (F.col("within") - F.col("rate"))).alias("_excess"),
        F.sum(F.col("n") * F.col("rate") * F.col("rate")).alias("_rate_squares"),
        F.sum("rate").alias("_rates"),
        F.sum(F.col("rate") * F.col("rate")).alias("_squares"),
        F.sum(F.lit(1.0) / F.col("n")).alias("_inverse_n"),
    )
    mean = F.greatest(F.col("_s") / F.col("_n"), F.lit(MIN_RATE))
    hosts_count = F.col("prior_hosts")
    # Mean over hosts of (rate - mean)² - mean / (n·f), expanded into the sums above.
    spread = (
        F.col("_squares")
        - F.lit(2.0) * mean * F.col("_rates")
        + hosts_count * mean * mean
        - mean * F.col("_inverse_n") / F.lit(effective_fraction)
    ) / hosts_count
    variance = F.greatest(spread, mean * mean / F.lit(4.0), F.lit(MIN_RATE))
    inverse_size = F.when(F.col("_rate_squares") > 0, F.col("_excess") / F.col("_rate_squares")).otherwise(0.0)
    size = F.least(
        F.greatest(F.lit(1.0) / F.greatest(inverse_size, F.lit(1.0 / MAX_SIZE)), F.lit(MIN_SIZE)), F.lit(MAX_SIZE)
    )
    return sums.select(
        "peer_group",
        "prior_hosts",
        (mean * mean / variance).alias("prior_shape"),
        (mean / variance).alias("prior_rate"),
        size.alias("nb_size_pooled"),
    )


def posterior(
    windows_observed: Column,
    new_sum: Column,
    prior_shape: Column,
    prior_rate: Column,
    pooled_size: Column,
    effective_fraction: float,
) -> tuple[Column, Column]:
    """Predictive mean and size of a host's next window count, as a moment-matched negative binomial.

    The gamma posterior of the rate is (shape + f·S, rate + f·n). The
    predictive variance is the negative binomial variance at the posterior
    mean plus the rate's posterior variance. The returned size gives a
    negative binomial with that mean and that variance.
    """
    shape = prior_shape + F.lit(effective_fraction) * new_sum
    rate = prior_rate + F.lit(effective_fraction) * windows_observed
    mean = shape / rate
    rate_variance = shape / (rate * rate)
    extra = (mean * mean + rate_variance) / pooled_size + rate_variance
    size = F.least(F.greatest(mean * mean / extra, F.lit(MIN_SIZE)), F.lit(MAX_SIZE))
    return mean, size
