// Metrics of a detector that gives each sample a score (higher = more anomalous) and a label
// (1 = positive, i.e. anomaly; 0 = negative, i.e. normal):
//   roc_auc            area under the ROC curve, the Mann-Whitney statistic
//                      P(score of a positive > score of a negative) + 1/2 P(equal scores)
//   average_precision  sum over thresholds of (R_k - R_{k-1}) P_k, scikit-learn's
//                      average_precision_score (a step integral, no interpolation)
//   roc_curve, precision_recall_curve   the curves as scikit-learn's functions give them
//   threshold_at_percentile             NumPy's default (linear) percentile
//   precision_recall_at                 precision and recall of the rule "score > threshold"
// Thresholds in the curves are the distinct scores; a sample is predicted positive at threshold
// t when score >= t (scikit-learn's rule). Every function refuses (ArgumentError) labels other
// than 0 and 1, labels and scores of different lengths, and empty input; NumericError for a NaN
// or infinite score, naming its index. The metrics that need both classes refuse input holding
// only one. Sums run in double whatever the score type.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "../core/errors.hpp"

namespace latent {

struct RocCurve {
    std::vector<double> false_positive_rate, true_positive_rate, thresholds;
};

struct PrecisionRecallCurve {
    std::vector<double> precision, recall, thresholds;
};

struct PrecisionRecall {
    double precision = 0, recall = 0;
    std::size_t true_positives = 0, false_positives = 0, false_negatives = 0;
};

namespace detail {

// Cumulative counts at each distinct score, from the highest score down: at thresholds[k],
// true_positives[k] positives and false_positives[k] negatives have score >= thresholds[k].
struct BinaryCounts {
    std::vector<double> true_positives, false_positives, thresholds;
    double positives() const { return true_positives.back(); }
    double negatives() const { return false_positives.back(); }
};

template <class Score>
void check_detection_inputs(const char* metric, const std::vector<int>& labels, const std::vector<Score>& scores) {
    require(!labels.empty(), metric, "no samples");
    require(labels.size() == scores.size(), metric,
            std::to_string(labels.size()) + " labels but " + std::to_string(scores.size()) + " scores");
    for (std::size_t i = 0; i < labels.size(); ++i) {
        require(labels[i] == 0 || labels[i] == 1, metric,
                "label " + std::to_string(i) + " is " + std::to_string(labels[i]) + "; labels must be 0 or 1");
        if (!std::isfinite(static_cast<double>(scores[i])))
            throw NumericError(std::string(metric) + ": score " + std::to_string(i) + " is " +
                               (std::isnan(static_cast<double>(scores[i])) ? "NaN" : "infinite"));
    }
}

template <class Score>
BinaryCounts binary_counts(const char* metric, const std::vector<int>& labels, const std::vector<Score>& scores,
                           bool need_both_classes) {
    check_detection_inputs(metric, labels, scores);
    std::vector<std::size_t> order(labels.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
    BinaryCounts counts;
    double positives = 0, negatives = 0;
    for (std::size_t k = 0; k < order.size(); ++k) {
        (labels[order[k]] == 1 ? positives : negatives) += 1;
        const bool last_of_its_score = k + 1 == order.size() || scores[order[k + 1]] != scores[order[k]];
        if (!last_of_its_score) continue;
        counts.true_positives.push_back(positives);
        counts.false_positives.push_back(negatives);
        counts.thresholds.push_back(static_cast<double>(scores[order[k]]));
    }
    if (need_both_classes)
        require(positives > 0 && negatives > 0, metric,
                "needs positive (1) and negative (0) samples, got " + std::to_string(static_cast<long long>(positives)) +
                    " positive and " + std::to_string(static_cast<long long>(negatives)) + " negative");
    return counts;
}

}  // namespace detail

// Area under the ROC curve as the Mann-Whitney statistic: over all (positive, negative) pairs,
// 1 when the positive scores higher, 1/2 when they tie, 0 otherwise, divided by the pair count.
// Equals scikit-learn's roc_auc_score (the trapezoidal area under roc_curve).
template <class Score> double roc_auc(const std::vector<int>& labels, const std::vector<Score>& scores) {
    const detail::BinaryCounts counts = detail::binary_counts("roc_auc", labels, scores, true);
    // Walking down the scores: each group's new positives beat the negatives of every lower
    // score (those not yet counted) and tie with the group's own negatives.
    double wins = 0, positives_above = 0, negatives_above = 0;
    const double negatives = counts.negatives();
    for (std::size_t k = 0; k < counts.thresholds.size(); ++k) {
        const double new_positives = counts.true_positives[k] - positives_above;
        const double new_negatives = counts.false_positives[k] - negatives_above;
        wins += new_positives * (negatives - counts.false_positives[k] + 0.5 * new_negatives);
        positives_above = counts.true_positives[k];
        negatives_above = counts.false_positives[k];
    }
    return wins / (counts.positives() * negatives);
}

// scikit-learn's roc_curve(labels, scores, drop_intermediate): one point per distinct score
// (highest first), preceded by (0, 0) at threshold +infinity (scikit-learn >= 1.3; 1.2 used the
// highest score + 1). With drop_intermediate, points collinear with their neighbours are left
// out (scikit-learn's second-difference rule), which does not change the area.
template <class Score>
RocCurve roc_curve(const std::vector<int>& labels, const std::vector<Score>& scores, bool drop_intermediate = true) {
    const detail::BinaryCounts counts = detail::binary_counts("roc_curve", labels, scores, true);
    const std::size_t size = counts.thresholds.size();
    auto keep = [&](std::size_t k) {
        if (!drop_intermediate || size <= 2 || k == 0 || k + 1 == size) return true;
        const auto& fp = counts.false_positives;
        const auto& tp = counts.true_positives;
        return fp[k + 1] - 2 * fp[k] + fp[k - 1] != 0 || tp[k + 1] - 2 * tp[k] + tp[k - 1] != 0;
    };
    RocCurve curve{{0.0}, {0.0}, {std::numeric_limits<double>::infinity()}};
    for (std::size_t k = 0; k < size; ++k) {
        if (!keep(k)) continue;
        curve.false_positive_rate.push_back(counts.false_positives[k] / counts.negatives());
        curve.true_positive_rate.push_back(counts.true_positives[k] / counts.positives());
        curve.thresholds.push_back(counts.thresholds[k]);
    }
    return curve;
}

// scikit-learn's precision_recall_curve (as of 1.2): thresholds are the distinct scores in
// increasing order; precision[k] and recall[k] are those of "score >= thresholds[k]", and a last
// point (precision 1, recall 0) with no threshold ends the curve. Needs at least one positive.
template <class Score>
PrecisionRecallCurve precision_recall_curve(const std::vector<int>& labels, const std::vector<Score>& scores) {
    const char* metric = "precision_recall_curve";
    const detail::BinaryCounts counts = detail::binary_counts(metric, labels, scores, false);
    detail::require(counts.positives() > 0, metric, "needs at least one positive (1) sample");
    PrecisionRecallCurve curve;
    for (std::size_t k = counts.thresholds.size(); k-- > 0;) {
        const double tp = counts.true_positives[k], fp = counts.false_positives[k];
        curve.precision.push_back(tp / (tp + fp));
        curve.recall.push_back(tp / counts.positives());
        curve.thresholds.push_back(counts.thresholds[k]);
    }
    curve.precision.push_back(1.0);
    curve.recall.push_back(0.0);
    return curve;
}

// scikit-learn's average_precision_score: sum over the distinct scores, highest first, of
// (R_k - R_{k-1}) P_k, where P_k and R_k are the precision and recall of "score >= k-th score"
// and R_0 = 0. Ties enter as one threshold, so their order does not matter. Needs both classes.
template <class Score> double average_precision(const std::vector<int>& labels, const std::vector<Score>& scores) {
    const detail::BinaryCounts counts = detail::binary_counts("average_precision", labels, scores, true);
    double sum = 0, previous_recall = 0;
    for (std::size_t k = 0; k < counts.thresholds.size(); ++k) {
        const double tp = counts.true_positives[k], fp = counts.false_positives[k];
        const double recall = tp / counts.positives();
        sum += (recall - previous_recall) * (tp / (tp + fp));
        previous_recall = recall;
    }
    return sum;
}

// The q-th percentile of `scores` (0 <= q <= 100) by NumPy's default method ("linear", type 7
// of Hyndman & Fan): with the scores sorted, x_0 <= ... <= x_{n-1}, and h = (n - 1) q / 100,
// the value x_floor(h) + (h - floor(h)) (x_floor(h)+1 - x_floor(h)). As np.percentile(scores, q).
template <class Score> double threshold_at_percentile(const std::vector<Score>& scores, double q) {
    const char* where = "threshold_at_percentile";
    detail::require(!scores.empty(), where, "no scores");
    detail::require(q >= 0 && q <= 100, where, "the percentile must be in [0, 100], got " + detail::readable_number(q));
    std::vector<double> sorted(scores.begin(), scores.end());
    for (std::size_t i = 0; i < sorted.size(); ++i)
        if (!std::isfinite(sorted[i]))
            throw NumericError(std::string(where) + ": score " + std::to_string(i) + " is " +
                               (std::isnan(sorted[i]) ? "NaN" : "infinite"));
    std::sort(sorted.begin(), sorted.end());
    const double h = static_cast<double>(sorted.size() - 1) * q / 100.0;
    const auto below = static_cast<std::size_t>(std::floor(h));
    if (below + 1 >= sorted.size()) return sorted.back();
    return sorted[below] + (h - static_cast<double>(below)) * (sorted[below + 1] - sorted[below]);
}

// Precision and recall of the rule "anomaly when score > threshold" (strictly greater, so a
// threshold at the 99th percentile of normal scores flags about 1% of normal samples).
// Precision is 0 when nothing is flagged; recall needs at least one positive.
template <class Score>
PrecisionRecall precision_recall_at(const std::vector<int>& labels, const std::vector<Score>& scores, double threshold) {
    const char* where = "precision_recall_at";
    detail::check_detection_inputs(where, labels, scores);
    detail::require(!std::isnan(threshold), where, "the threshold is NaN");
    PrecisionRecall result;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const bool flagged = static_cast<double>(scores[i]) > threshold;
        if (flagged && labels[i] == 1) ++result.true_positives;
        else if (flagged) ++result.false_positives;
        else if (labels[i] == 1) ++result.false_negatives;
    }
    const std::size_t positives = result.true_positives + result.false_negatives;
    detail::require(positives > 0, where, "needs at least one positive (1) sample");
    const std::size_t flagged = result.true_positives + result.false_positives;
    result.precision = flagged == 0 ? 0.0 : static_cast<double>(result.true_positives) / static_cast<double>(flagged);
    result.recall = static_cast<double>(result.true_positives) / static_cast<double>(positives);
    return result;
}

}  // namespace latent
