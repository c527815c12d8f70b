#include <catch2/catch.hpp>

#include <latent/data/anomaly.hpp>
#include <latent/data/detection_metrics.hpp>
#include <latent/latent.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "helpers.hpp"

using namespace latent;

namespace {

// The worked case used below: labels and scores, with ties across and within the classes.
//   score:  0.9  0.8  0.8  0.7  0.5  0.5  0.5  0.2
//   label:   1    1    0    1    0    1    0    0
// 4 positives, 4 negatives.
const std::vector<int> tied_labels{1, 1, 0, 1, 0, 1, 0, 0};
const std::vector<double> tied_scores{0.9, 0.8, 0.8, 0.7, 0.5, 0.5, 0.5, 0.2};

}  // namespace

TEST_CASE("roc_auc counts ties as half a win (the Mann-Whitney statistic)") {
    // Pairs (positive, negative), 16 of them. Positive 0.9 beats all 4 negatives: 4.
    // Positive 0.8 ties the negative 0.8 (1/2) and beats 0.5, 0.5, 0.2: 3.5.
    // Positive 0.7 beats 0.5, 0.5, 0.2: 3. Positive 0.5 ties two negatives (1) and beats 0.2: 2.
    // AUC = (4 + 3.5 + 3 + 2) / 16 = 12.5 / 16 = 0.78125.
    CHECK(roc_auc(tied_labels, tied_scores) == Approx(0.78125).epsilon(1e-15));

    // All scores equal: every pair ties, AUC = 1/2.
    CHECK(roc_auc(std::vector<int>{0, 1, 1, 0, 1}, std::vector<float>{3, 3, 3, 3, 3}) == 0.5);
    // Perfect and reversed rankings.
    CHECK(roc_auc(std::vector<int>{0, 0, 1, 1}, std::vector<double>{1, 2, 3, 4}) == 1.0);
    CHECK(roc_auc(std::vector<int>{1, 1, 0, 0}, std::vector<double>{1, 2, 3, 4}) == 0.0);
    // scikit-learn's documented example: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8] -> 0.75.
    CHECK(roc_auc(std::vector<int>{0, 0, 1, 1}, std::vector<double>{0.1, 0.4, 0.35, 0.8}) == 0.75);
}

TEST_CASE("roc_auc does not depend on the order of the samples") {
    const std::vector<int> labels{0, 0, 1, 0, 1, 1, 0, 1};
    const std::vector<double> scores{0.5, 0.2, 0.8, 0.5, 0.7, 0.5, 0.8, 0.9};
    CHECK(roc_auc(labels, scores) == Approx(0.78125).epsilon(1e-15));  // tied_scores, shuffled
}

TEST_CASE("average_precision is the step integral over distinct thresholds") {
    // Distinct thresholds from the top (TP, FP cumulative; P = TP/(TP+FP), R = TP/4):
    //   0.9: TP 1 FP 0  P 1      R 1/4
    //   0.8: TP 2 FP 1  P 2/3    R 2/4
    //   0.7: TP 3 FP 1  P 3/4    R 3/4
    //   0.5: TP 4 FP 3  P 4/7    R 1
    //   0.2: TP 4 FP 4  P 1/2    R 1
    // AP = 1/4 (1 + 2/3 + 3/4 + 4/7) + 0 = (84 + 56 + 63 + 48) / 336 = 251/336.
    CHECK(average_precision(tied_labels, tied_scores) == Approx(251.0 / 336.0).epsilon(1e-15));
    // scikit-learn's documented example: 0.8333...
    CHECK(average_precision(std::vector<int>{0, 0, 1, 1}, std::vector<double>{0.1, 0.4, 0.35, 0.8}) ==
          Approx(5.0 / 6.0).epsilon(1e-15));
    // All scores tied: one threshold, precision = positive fraction 2/5, recall 1.
    CHECK(average_precision(std::vector<int>{0, 1, 1, 0, 0}, std::vector<double>{1, 1, 1, 1, 1}) ==
          Approx(0.4).epsilon(1e-15));
}

TEST_CASE("roc_curve gives scikit-learn's points, with and without the intermediate ones") {
    // All points (FP/4, TP/4) from the table above, after the start (0, 0) at +infinity:
    //   (0, 1/4) (1/4, 2/4) (1/4, 3/4) (3/4, 1) (1, 1).
    const RocCurve all = roc_curve(tied_labels, tied_scores, false);
    CHECK(all.false_positive_rate == std::vector<double>{0, 0, 0.25, 0.25, 0.75, 1});
    CHECK(all.true_positive_rate == std::vector<double>{0, 0.25, 0.5, 0.75, 1, 1});
    CHECK(std::isinf(all.thresholds[0]));
    CHECK(std::vector<double>(all.thresholds.begin() + 1, all.thresholds.end()) ==
          std::vector<double>{0.9, 0.8, 0.7, 0.5, 0.2});
    // Dropping: a point is dropped when both second differences of FP and TP counts are 0.
    // FP counts 0 1 1 3 4 -> second differences at 0.8, 0.7, 0.5: -1, 2, -1; none dropped.
    const RocCurve dropped = roc_curve(tied_labels, tied_scores);
    CHECK(dropped.false_positive_rate == all.false_positive_rate);

    // A straight run: scores 4 3 2 1, labels 1 1 1 0. TP 1 2 3 3, FP 0 0 0 1: the point at 3
    // (second differences 0 and 0) is collinear and dropped; the one at 2 is a corner.
    const RocCurve straight = roc_curve(std::vector<int>{1, 1, 1, 0}, std::vector<double>{4, 3, 2, 1});
    CHECK(straight.thresholds.size() == 4);
    CHECK(straight.thresholds[1] == 4);
    CHECK(straight.thresholds[2] == 2);
    CHECK(straight.true_positive_rate == std::vector<double>{0, 1.0 / 3, 1, 1});
}

TEST_CASE("precision_recall_curve runs from the lowest threshold up and ends at (1, 0)") {
    const PrecisionRecallCurve curve = precision_recall_curve(tied_labels, tied_scores);
    CHECK(curve.thresholds == std::vector<double>{0.2, 0.5, 0.7, 0.8, 0.9});
    CHECK(curve.recall == std::vector<double>{1, 1, 0.75, 0.5, 0.25, 0});
    REQUIRE(curve.precision.size() == 6);
    CHECK(curve.precision[0] == 0.5);
    CHECK(curve.precision[1] == Approx(4.0 / 7.0).epsilon(1e-15));
    CHECK(curve.precision[2] == 0.75);
    CHECK(curve.precision[3] == Approx(2.0 / 3.0).epsilon(1e-15));
    CHECK(curve.precision[4] == 1);
    CHECK(curve.precision[5] == 1);
}

TEST_CASE("threshold_at_percentile is NumPy's linear percentile") {
    // Sorted: 1 2 4 8 16 (n = 5). q = 99: h = 4 * 0.99 = 3.96 -> 8 + 0.96 * (16 - 8) = 15.68.
    const std::vector<double> scores{16, 2, 8, 1, 4};
    CHECK(threshold_at_percentile(scores, 99) == Approx(15.68).epsilon(1e-15));
    // q = 50: h = 2, exactly the median 4. q = 0 and q = 100: the extremes. q = 30: h = 1.2 -> 2.4.
    CHECK(threshold_at_percentile(scores, 50) == 4);
    CHECK(threshold_at_percentile(scores, 0) == 1);
    CHECK(threshold_at_percentile(scores, 100) == 16);
    CHECK(threshold_at_percentile(scores, 30) == Approx(2.4).epsilon(1e-15));
    CHECK(threshold_at_percentile(std::vector<float>{7}, 99) == 7);
}

TEST_CASE("precision_recall_at flags scores strictly above the threshold") {
    // Threshold 0.5: flagged 0.9 (1), 0.8 (1), 0.8 (0), 0.7 (1); the 0.5s are not flagged.
    const PrecisionRecall result = precision_recall_at(tied_labels, tied_scores, 0.5);
    CHECK(result.true_positives == 3);
    CHECK(result.false_positives == 1);
    CHECK(result.false_negatives == 1);
    CHECK(result.precision == 0.75);
    CHECK(result.recall == 0.75);
    // Nothing flagged: precision 0 by convention, recall 0.
    const PrecisionRecall none = precision_recall_at(tied_labels, tied_scores, 1.0);
    CHECK(none.precision == 0);
    CHECK(none.recall == 0);
}

TEST_CASE("detection metrics refuse bad labels, lengths, non-finite scores and one-class input") {
    test::expect_error<ArgumentError>([] { roc_auc(std::vector<int>{0, 2}, std::vector<double>{1, 2}); },
                                      "label 1 is 2; labels must be 0 or 1");
    test::expect_error<ArgumentError>([] { roc_auc(std::vector<int>{0, 1}, std::vector<double>{1}); },
                                      "2 labels but 1 scores");
    test::expect_error<ArgumentError>([] { roc_auc(std::vector<int>{}, std::vector<double>{}); }, "no samples");
    test::expect_error<NumericError>(
        [] { average_precision(std::vector<int>{0, 1, 1}, std::vector<double>{1, std::nan(""), 2}); },
        "score 1 is NaN");
    test::expect_error<NumericError>(
        [] { roc_auc(std::vector<int>{0, 1}, std::vector<double>{1, std::numeric_limits<double>::infinity()}); },
        "score 1 is infinite");
    test::expect_error<ArgumentError>([] { roc_auc(std::vector<int>{1, 1}, std::vector<double>{1, 2}); },
                                      "got 2 positive and 0 negative");
    test::expect_error<ArgumentError>(
        [] { precision_recall_curve(std::vector<int>{0, 0}, std::vector<double>{1, 2}); }, "at least one positive");
    test::expect_error<ArgumentError>([] { threshold_at_percentile(std::vector<double>{1, 2}, 101); },
                                      "must be in [0, 100]");
    test::expect_error<ArgumentError>([] { threshold_at_percentile(std::vector<double>{}, 50); }, "no scores");
}

namespace {

// A model whose reconstruction is x with every element halved: the error of element v is
// (v/2 - v)^2 = v^2/4.
struct HalvingModel {
    Tensor<double> reconstruct(const Tensor<double>& x) const { return x * 0.5; }
};

// A model that drops the last sample: a wrong reconstruction shape.
struct DroppingModel {
    Tensor<double> reconstruct(const Tensor<double>& x) const {
        return samples(x, 0, std::max<Index>(0, x.dimension(0) - 1));
    }
};

}  // namespace

TEST_CASE("reconstruction errors: mean or sum per sample, and per feature") {
    // Two samples of shape (3, 1, 1): (2, 4, 6) and (0, 2, 0).
    Tensor<double> x(2, 3, 1, 1);
    const double values[] = {2, 4, 6, 0, 2, 0};
    std::copy(values, values + 6, x.data());
    HalvingModel model;
    // Squared errors v^2/4: (1, 4, 9) and (0, 1, 0).
    const std::vector<double> sums = reconstruction_errors(model, x, ErrorReduction::sum, 1);
    CHECK(sums == std::vector<double>{14, 1});
    const std::vector<double> means = reconstruction_errors(model, x);
    CHECK(means[0] == Approx(14.0 / 3.0));
    CHECK(means[1] == Approx(1.0 / 3.0));
    const Tensor<double> each = squared_errors(model, x);
    CHECK(each(0, 2, 0, 0) == 9);
    CHECK(each(1, 1, 0, 0) == 1);
    CHECK(feature_errors(model, x) == std::vector<double>{0.5, 2.5, 4.5});

    // Blocks of any size give the same scores.
    CHECK(reconstruction_errors(model, x, ErrorReduction::sum, 5) == sums);

    DroppingModel dropping;
    test::expect_error<ShapeError>([&] { reconstruction_errors(dropping, x); }, "reconstructs (2, 3, 1, 1) as (1, 3, 1, 1)");
    test::expect_error<ArgumentError>([&] { reconstruction_errors(model, x, ErrorReduction::mean, 0); },
                                      "block must be >= 1");
}

TEST_CASE("reconstruction_errors agrees with Autoencoder::reconstruction_error") {
    Encoder<double> encoder{Dense<double>(2), Tanh<double>()};
    Decoder<double> decoder{Dense<double>(4)};
    Autoencoder<double> model(std::move(encoder), std::move(decoder), Shape{4, 1, 1}, 7);
    const Tensor<double> x = test::random_tensor<double>(5, Shape{4, 1, 1}, 3);
    const std::vector<double> expected = model.reconstruction_error(x);
    const std::vector<double> scores = reconstruction_errors(model, x, ErrorReduction::mean, 2);
    REQUIRE(scores.size() == expected.size());
    for (std::size_t i = 0; i < scores.size(); ++i) CHECK(scores[i] == Approx(expected[i]).epsilon(1e-12));
}
