#include <catch2/catch.hpp>

#include <latent/data/csv.hpp>
#include <latent/data/scalers.hpp>
#include <latent/latent.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace latent;
namespace fs = std::filesystem;

namespace {

// A CSV file with the given text under the system temporary directory, removed afterwards.
class CsvFile {
public:
    explicit CsvFile(const std::string& text) {
        const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
        path_ = (fs::temp_directory_path() /
                 ("latent-test-tabular-" + std::to_string(stamp) + "-" + std::to_string(std::random_device{}()) + ".csv"))
                    .string();
        std::ofstream(path_, std::ios::binary) << text;
    }
    ~CsvFile() {
        std::error_code ignored;
        fs::remove(path_, ignored);
    }
    CsvFile(const CsvFile&) = delete;
    CsvFile& operator=(const CsvFile&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

CsvOptions with_label(CsvColumn label) {
    CsvOptions options;
    options.label = std::move(label);
    return options;
}

// read_csv on `text` must throw ErrorType with a message containing `part`.
template <class ErrorType>
void expect_csv_error(const std::string& text, const CsvOptions& options, const std::string& part) {
    const CsvFile file(text);
    test::expect_error<ErrorType>([&] { read_csv<float>(file.path(), options); }, part);
}

Tensor<double> table(Index rows, Index columns, const std::vector<double>& values) {
    Tensor<double> x(rows, columns, 1, 1);
    REQUIRE(static_cast<Index>(values.size()) == x.size());
    std::copy(values.begin(), values.end(), x.data());
    return x;
}

}  // namespace

TEST_CASE("read_csv reads a header, features by name and index, and a label") {
    const CsvFile file("id,width, height ,kind\r\n1,2.5,-3,\"ok\"\r\n\r\n2,+4e1,0.25,fault\r\n");
    CsvOptions options = with_label("kind");
    options.features = {"height", 1};
    const CsvTable<double> data = read_csv<double>(file.path(), options);
    REQUIRE(data.samples.dimensions() == Tensor<double>::Dimensions(2, 2, 1, 1));
    CHECK(data.samples(0, 0, 0, 0) == -3);
    CHECK(data.samples(0, 1, 0, 0) == 2.5);
    CHECK(data.samples(1, 0, 0, 0) == 0.25);
    CHECK(data.samples(1, 1, 0, 0) == 40);
    CHECK(data.labels == std::vector<std::string>{"ok", "fault"});
    CHECK(data.feature_names == std::vector<std::string>{"height", "width"});
    CHECK(data.label_name == "kind");
    CHECK(data.lines == std::vector<Index>{2, 4});  // the blank line 3 is skipped
}

TEST_CASE("read_csv without a header, with skipped lines, another delimiter and negative indices") {
    const CsvFile file("3;2;first line is not a header\n1;2;0\n3;4;1\n5;6;1\n");
    CsvOptions options = with_label(-1);
    options.header = false;
    options.skip_lines = 1;
    options.delimiter = ';';
    const CsvTable<float> data = read_csv<float>(file.path(), options);
    REQUIRE(data.samples.dimension(0) == 3);
    REQUIRE(data.samples.dimension(1) == 2);
    CHECK(data.samples(2, 1, 0, 0) == 6.0f);
    CHECK(data.labels == std::vector<std::string>{"0", "1", "1"});
    CHECK(data.feature_names == std::vector<std::string>{"column 1", "column 2"});
    CHECK(data.label_name == "column 3");
}

TEST_CASE("read_csv handles quoted fields with delimiters and quotes inside") {
    const CsvFile file("name,value\n\"a, \"\"b\"\"\",1\n  \"c\"  ,2\n");
    const CsvTable<float> data = read_csv<float>(file.path(), with_label("name"));
    CHECK(data.labels == std::vector<std::string>{"a, \"b\"", "c"});
    CHECK(data.samples(1, 0, 0, 0) == 2.0f);
}

TEST_CASE("read_csv names the line and column of bad data") {
    const std::string header = "a,b,c\n";
    expect_csv_error<FormatError>(header + "1,2,3\n4,5\n", {}, "line 3: 2 fields, but line 1 (the header) has 3");
    expect_csv_error<FormatError>(header + "1,2,3\n4,5,6,7\n", {}, "line 3: 4 fields");
    expect_csv_error<FormatError>(header + "1,2,3\n4,x5,6\n", {}, "line 3, column 2 ('b'): 'x5' is not a number");
    expect_csv_error<FormatError>(header + "1,2,3\n4,5,6.0.1\n", {}, "line 3, column 3 ('c'): '6.0.1' is not a number");
    expect_csv_error<FormatError>(header + "1,,3\n", {}, "line 2, column 2 ('b'): missing value ('')");
    expect_csv_error<FormatError>(header + "1,2,NaN\n", {}, "line 2, column 3 ('c'): missing value ('NaN')");
    expect_csv_error<FormatError>(header + "inf,2,3\n", {}, "line 2, column 1 ('a'): 'inf' is not a finite number");
    expect_csv_error<FormatError>(header + "1e39,2,3\n", {}, "'1e39' is out of the range of the scalar type");
    expect_csv_error<FormatError>(header + "1,\"2,3\n", {}, "line 2, column 2: a quoted field is not closed");
    expect_csv_error<FormatError>(header + "1,\"2\"x,3\n", {}, "line 2, column 2: text after the closing quote");
    expect_csv_error<FormatError>(header, {}, "no data rows");
    expect_csv_error<FormatError>("", {}, "no header");
    expect_csv_error<FormatError>("a,kind\n1,\n", with_label("kind"), "line 2, column 2 ('kind'): the label is empty");
}

TEST_CASE("read_csv refuses options that do not fit the file") {
    const std::string text = "a,b,a\n1,2,3\n";
    expect_csv_error<ArgumentError>(text, with_label("z"), "no column named 'z'");
    expect_csv_error<ArgumentError>(text, with_label("a"), "two columns are named 'a'");
    expect_csv_error<ArgumentError>(text, with_label(3), "index 3 is out of range: the file has 3 columns");
    expect_csv_error<ArgumentError>(text, with_label(-4), "out of range");
    CsvOptions label_as_feature = with_label(1);
    label_as_feature.features = {0, "b"};
    expect_csv_error<ArgumentError>(text, label_as_feature, "'b' is the label column");
    CsvOptions no_header = with_label("b");
    no_header.header = false;
    expect_csv_error<ArgumentError>(text, no_header, "chosen by name, but the options say there is no header");
    expect_csv_error<ArgumentError>("kind\nx\n", with_label("kind"), "no feature columns");
    test::expect_error<IoError>([] { read_csv<float>("/nonexistent/table.csv"); }, "cannot open");
}

TEST_CASE("read_csv fills missing cells or skips their rows when the options say so") {
    const std::string text = "a,b,kind\n1,NA,x\n2,3,y\n,4,z\n5,6,\n";
    CsvOptions fill = with_label("kind");
    fill.missing = MissingValues::fill;
    fill.fill_value = -1;
    {
        const CsvFile file(text);
        // The empty label on line 5 is still an error: a label cannot be filled.
        test::expect_error<FormatError>([&] { read_csv<float>(file.path(), fill); }, "line 5, column 3 ('kind')");
    }
    const CsvFile file(text.substr(0, text.size() - 5));  // without line 5
    const CsvTable<float> filled = read_csv<float>(file.path(), fill);
    CHECK(filled.samples(0, 1, 0, 0) == -1.0f);
    CHECK(filled.samples(2, 0, 0, 0) == -1.0f);
    CsvOptions skip = fill;
    skip.missing = MissingValues::skip_row;
    const CsvFile with_empty_label(text);
    const CsvTable<float> kept = read_csv<float>(with_empty_label.path(), skip);
    CHECK(kept.labels == std::vector<std::string>{"y"});
    CHECK(kept.lines == std::vector<Index>{3});
    CHECK(kept.samples(0, 1, 0, 0) == 3.0f);
}

TEST_CASE("matrix_from_tensor and tensor_from_matrix keep row n as sample n") {
    Matrix<double> matrix(2, 3);
    matrix << 1, 2, 3, 4, 5, 6;
    const Tensor<double> tensor = tensor_from_matrix(matrix);
    REQUIRE(tensor.dimensions() == Tensor<double>::Dimensions(2, 3, 1, 1));
    CHECK(tensor(1, 0, 0, 0) == 4);
    CHECK(tensor(0, 2, 0, 0) == 3);
    CHECK(matrix_from_tensor(tensor) == matrix);
    // A column-major matrix and an expression convert the same way.
    const Eigen::MatrixXd column_major = matrix.transpose().transpose();
    CHECK(test::max_abs_difference(tensor_from_matrix(column_major), tensor) == 0);
    CHECK(test::max_abs_difference(tensor_from_matrix(matrix * 2.0), Tensor<double>(tensor * 2.0)) == 0);
    // Images flatten in memory order: (N, C, H, W) -> (N, C*H*W).
    const Tensor<float> images = test::random_tensor<float>(3, Shape{2, 2, 3}, 5);
    const Matrix<float> rows = matrix_from_tensor(images);
    REQUIRE(rows.rows() == 3);
    REQUIRE(rows.cols() == 12);
    CHECK(rows(2, 7) == images(2, 1, 0, 1));
}

TEST_CASE("Standardizer: mean 0 and std 1 per feature, constant features, exact inverse") {
    // Feature 0: 1, 3, 5 (mean 3, population std sqrt(8/3)); feature 1 constant 7.
    const Tensor<double> x = table(3, 2, {1, 7, 3, 7, 5, 7});
    Standardizer<double> scaler;
    const Tensor<double> y = scaler.fit_transform(x);
    CHECK(scaler.mean() == std::vector<double>{3, 7});
    CHECK(scaler.stddev()[0] == Approx(std::sqrt(8.0 / 3.0)).epsilon(1e-15));
    CHECK(scaler.stddev()[1] == 0);
    CHECK(y(0, 0, 0, 0) == Approx(-2 / std::sqrt(8.0 / 3.0)).epsilon(1e-15));
    CHECK(y(2, 0, 0, 0) == Approx(2 / std::sqrt(8.0 / 3.0)).epsilon(1e-15));
    CHECK(y(1, 1, 0, 0) == 0);  // constant: x - mean, divided by 1
    CHECK(scaler.transform(table(1, 2, {3, 9}))(0, 1, 0, 0) == 2);
    CHECK(test::max_abs_difference(scaler.inverse_transform(y), x) < 1e-14);
}

TEST_CASE("MinMaxScaler maps the fitted range onto [low, high] and inverts") {
    // Feature 0: 2..6; feature 1 constant -1; range [-1, 1].
    const Tensor<double> x = table(3, 2, {2, -1, 4, -1, 6, -1});
    MinMaxScaler<double> scaler(-1, 1);
    const Tensor<double> y = scaler.fit_transform(x);
    CHECK(y(0, 0, 0, 0) == -1);
    CHECK(y(1, 0, 0, 0) == 0);
    CHECK(y(2, 0, 0, 0) == 1);
    CHECK(y(0, 1, 0, 0) == -1);  // constant: low
    CHECK(scaler.transform(table(1, 2, {10, 0}))(0, 0, 0, 0) == 3);  // outside the fitted range: not clipped
    CHECK(test::max_abs_difference(scaler.inverse_transform(y), x) < 1e-14);
    test::expect_error<ArgumentError>([] { MinMaxScaler<float>(1, 1); }, "finite low < high");
}

TEST_CASE("scalers survive a config round trip bit for bit") {
    const Tensor<float> x = test::random_tensor<float>(20, Shape{3, 2, 1}, 11, -50.0, 300.0);
    const Tensor<float> probe = test::random_tensor<float>(4, Shape{3, 2, 1}, 12, -100.0, 400.0);
    Standardizer<float> standardizer;
    standardizer.fit(x);
    const Config config = standardizer.config();
    CHECK(config.get_string("scaler") == "Standardizer");
    CHECK(config.get_int("channels") == 3);
    const Standardizer<float> restored = Standardizer<float>::from_config(config);
    CHECK(restored.mean() == standardizer.mean());
    CHECK(restored.stddev() == standardizer.stddev());
    CHECK(test::max_abs_difference(restored.transform(probe), standardizer.transform(probe)) == 0);

    MinMaxScaler<float> min_max(0, 10);
    min_max.fit(x);
    const MinMaxScaler<float> back = MinMaxScaler<float>::from_config(min_max.config());
    CHECK(back.data_min() == min_max.data_min());
    CHECK(back.data_max() == min_max.data_max());
    CHECK(back.high() == 10);
    CHECK(test::max_abs_difference(back.inverse_transform(probe), min_max.inverse_transform(probe)) == 0);
}

TEST_CASE("scaler configs that are wrong give FormatError") {
    Standardizer<double> scaler;
    scaler.fit(table(2, 2, {1, 2, 3, 5}));
    const Config good = scaler.config();
    auto changed = [&](const std::string& key, const std::string& value) { return Config(good).set(key, value); };
    test::expect_error<FormatError>([&] { Standardizer<double>::from_config(changed("mean", "1")); },
                                    "'mean' holds 1 numbers, expected 2");
    test::expect_error<FormatError>([&] { Standardizer<double>::from_config(changed("std", "1 x")); },
                                    "'std': value 1 is not a finite number");
    test::expect_error<FormatError>([&] { Standardizer<double>::from_config(changed("std", "1 -2")); }, "negative");
    test::expect_error<FormatError>([&] { Standardizer<double>::from_config(changed("version", "2")); },
                                    "version 2 is not supported");
    test::expect_error<FormatError>([&] { Standardizer<double>::from_config(changed("width", "0")); }, "not valid");
    test::expect_error<FormatError>([&] { MinMaxScaler<double>::from_config(good); }, "not a MinMaxScaler");
    test::expect_error<FormatError>([&] { Standardizer<double>::from_config(Config().set("scaler", "Standardizer")); },
                                    "no value 'version'");
}

TEST_CASE("scalers refuse NaN, shape mismatches, empty batches and use before fit") {
    Standardizer<float> scaler;
    test::expect_error<ArgumentError>([&] { scaler.transform(Tensor<float>(1, 2, 1, 1)); }, "not been fitted");
    test::expect_error<ArgumentError>([&] { scaler.config(); }, "not been fitted");
    test::expect_error<ArgumentError>([&] { scaler.fit(Tensor<float>(0, 2, 1, 1)); }, "empty batch");
    Tensor<float> with_nan(2, 2, 1, 1);
    with_nan.setConstant(1.0f);
    with_nan(1, 0, 0, 0) = std::numeric_limits<float>::quiet_NaN();
    test::expect_error<NumericError>([&] { scaler.fit(with_nan); }, "sample 1, feature 0 is NaN");
    MinMaxScaler<float> min_max;
    Tensor<float> ones(2, 2, 1, 1);
    ones.setConstant(1.0f);
    min_max.fit(ones);
    test::expect_error<ShapeError>([&] { min_max.transform(Tensor<float>(2, 3, 1, 1)); },
                                   "fitted on samples of shape (2, 1, 1), got (2, 3, 1, 1)");
    with_nan(1, 0, 0, 0) = std::numeric_limits<float>::infinity();
    test::expect_error<NumericError>([&] { min_max.inverse_transform(with_nan); }, "sample 1, feature 0 is infinite");
}
