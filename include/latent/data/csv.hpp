// Tables of numbers from CSV files, as samples of shape (D, 1, 1): read_csv<T>(path, options)
// gives an (N, D, 1, 1) tensor (N rows, D feature columns), the label column's text and the
// column names. matrix_from_tensor / tensor_from_matrix convert between that layout and an
// Eigen (N, D) matrix (row n = sample n).
//
// The format read:
//   * lines end in "\n" or "\r\n"; blank lines are skipped; a UTF-8 byte-order mark is ignored;
//   * the first `skip_lines` non-blank lines are ignored (a file whose first line is not a
//     header), then, with `header`, the next line names the columns;
//   * fields are separated by `delimiter`; a field may be quoted ("a, b"; "" is one quote), but a
//     quoted field cannot span lines; spaces and tabs around a field are ignored;
//   * every row has as many fields as the header (or, without a header, as the first row);
//   * a feature cell is a decimal number as std::from_chars reads it (a leading '+' is allowed),
//     finite and within T's range; a cell that is empty or "NA", "N/A", "null" or "NaN" (any
//     case) is missing, and is an error unless `missing` says to fill it or skip the row.
// Errors: IoError when the file cannot be read; ArgumentError for options that do not fit the
// file (an unknown column name, an index out of range, the label among the features); FormatError
// for the data, naming the file, the line and the column, both counted from 1 as an editor shows
// them (CsvColumn indices count from 0, as in code).
#pragma once

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../core/tensor.hpp"

namespace latent {

// A column chosen by its position (0 = first; negative counts from the end, -1 = last) or by
// its name in the header.
class CsvColumn {
public:
    CsvColumn(Index index) : index_(index) {}
    CsvColumn(int index) : index_(index) {}  // a literal 0 is an index, not a null name
    CsvColumn(std::string name) : name_(std::move(name)) {}
    CsvColumn(const char* name) : name_(name) {}

    bool by_name() const { return name_.has_value(); }
    const std::string& name() const { return *name_; }
    Index index() const { return index_; }
    std::string str() const { return by_name() ? "'" + *name_ + "'" : "index " + std::to_string(index_); }

private:
    Index index_ = 0;
    std::optional<std::string> name_;
};

// What a missing feature cell (see the top of this file) does.
enum class MissingValues {
    error,     // FormatError naming the line and column
    fill,      // the cell takes CsvOptions::fill_value
    skip_row,  // the row is left out (CsvTable::lines says which rows were kept)
};

struct CsvOptions {
    char delimiter = ',';
    bool header = true;                // the first line read names the columns
    Index skip_lines = 0;              // non-blank lines ignored before the header (or the first row)
    std::vector<CsvColumn> features;   // empty: every column but the label, in file order
    std::optional<CsvColumn> label;    // none: the table has no label column
    MissingValues missing = MissingValues::error;
    double fill_value = 0;             // with MissingValues::fill
};

template <class T> struct CsvTable {
    Tensor<T> samples;                       // (N, D, 1, 1), features in the order asked for
    std::vector<std::string> labels;         // N label cells as written (unquoted, trimmed); empty without a label
    std::vector<std::string> feature_names;  // D names: the header's, or "column K" (K from 1) without one
    std::string label_name;
    std::vector<Index> lines;                // the line (from 1) each sample was read from
};

namespace detail {

inline std::string trim_spaces(const std::string& text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string::npos) return "";
    return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

inline bool is_missing_cell(const std::string& cell) {
    std::string lower;
    for (char c : cell) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower.empty() || lower == "na" || lower == "n/a" || lower == "null" || lower == "nan" ||
           lower == "+nan" || lower == "-nan";
}

// One line of a CSV file, split into trimmed, unquoted fields.
class CsvLine {
public:
    CsvLine(std::string where, Index number) : where_(std::move(where)), number_(number) {}

    std::vector<std::string> split(const std::string& line, char delimiter) const {
        std::vector<std::string> fields;
        std::size_t at = 0;
        while (true) {
            fields.push_back(next_field(line, delimiter, at, fields.size() + 1));
            if (at >= line.size()) break;
            ++at;  // the delimiter
        }
        return fields;
    }

    std::string place(std::size_t column) const {
        return where_ + " line " + std::to_string(number_) + ", column " + std::to_string(column);
    }

private:
    // The field starting at `at`; leaves `at` on the delimiter after it or at the line's end.
    std::string next_field(const std::string& line, char delimiter, std::size_t& at, std::size_t column) const {
        while (at < line.size() && (line[at] == ' ' || line[at] == '\t') && line[at] != delimiter) ++at;
        if (at >= line.size() || line[at] != '"') {
            const std::size_t end = std::min(line.find(delimiter, at), line.size());
            std::string field = trim_spaces(line.substr(at, end - at));
            at = end;
            return field;
        }
        std::string field;
        for (++at;; ++at) {
            if (at >= line.size()) throw FormatError(place(column) + ": a quoted field is not closed on its line");
            if (line[at] != '"') field += line[at];
            else if (at + 1 < line.size() && line[at + 1] == '"') field += line[++at];
            else break;
        }
        for (++at; at < line.size() && line[at] != delimiter; ++at)
            if (line[at] != ' ' && line[at] != '\t')
                throw FormatError(place(column) + ": text after the closing quote of a quoted field");
        return field;
    }

    std::string where_;
    Index number_;
};

// The file's lines with their numbers (from 1), without line ends, blank lines left out.
inline std::vector<std::pair<Index, std::string>> csv_lines(const std::vector<char>& bytes) {
    std::vector<std::pair<Index, std::string>> lines;
    std::size_t at = 0;
    if (bytes.size() >= 3 && bytes[0] == '\xEF' && bytes[1] == '\xBB' && bytes[2] == '\xBF') at = 3;
    for (Index number = 1; at < bytes.size(); ++number) {
        std::size_t end = at;
        while (end < bytes.size() && bytes[end] != '\n') ++end;
        std::string line(bytes.begin() + static_cast<std::ptrdiff_t>(at), bytes.begin() + static_cast<std::ptrdiff_t>(end));
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!trim_spaces(line).empty()) lines.emplace_back(number, std::move(line));
        at = end + 1;
    }
    return lines;
}

// The position of `column` among `names`; ArgumentError when it names no column or two.
inline std::size_t resolve_csv_column(const CsvColumn& column, const std::vector<std::string>& names, bool header,
                                      const std::string& where) {
    const auto count = static_cast<Index>(names.size());
    if (!column.by_name()) {
        const Index index = column.index() < 0 ? count + column.index() : column.index();
        require(index >= 0 && index < count, where,
                "column " + column.str() + " is out of range: the file has " + std::to_string(count) + " columns");
        return static_cast<std::size_t>(index);
    }
    require(header, where, "column " + column.str() + " is chosen by name, but the options say there is no header");
    const auto found = std::find(names.begin(), names.end(), column.name());
    require(found != names.end(), where,
            "no column named " + column.str() + " in the header (it has " + std::to_string(count) + " columns, the first '" +
                names.front() + "')");
    require(std::find(found + 1, names.end(), column.name()) == names.end(), where,
            "two columns are named " + column.str() + "; choose one by index");
    return static_cast<std::size_t>(found - names.begin());
}

// The feature columns' positions: those asked for, or all but the label.
inline std::vector<std::size_t> csv_feature_columns(const CsvOptions& options, const std::vector<std::string>& names,
                                                    std::optional<std::size_t> label, const std::string& where) {
    std::vector<std::size_t> columns;
    if (options.features.empty()) {
        for (std::size_t c = 0; c < names.size(); ++c)
            if (c != label) columns.push_back(c);
    }
    for (const CsvColumn& column : options.features) {
        const std::size_t c = resolve_csv_column(column, names, options.header, where);
        require(c != label, where, "column " + column.str() + " is the label column; it cannot also be a feature");
        columns.push_back(c);
    }
    require(!columns.empty(), where, "no feature columns (the file has only the label column)");
    return columns;
}

// A feature cell as a number of type T; nullopt when the cell is missing.
template <class T> std::optional<double> parse_csv_number(const std::string& cell, const std::string& place) {
    if (is_missing_cell(cell)) return std::nullopt;
    const char* begin = cell.data() + (cell.size() > 1 && cell[0] == '+' && cell[1] != '-' ? 1 : 0);
    const char* end = cell.data() + cell.size();
    double value = 0;
    const auto [stop, status] = std::from_chars(begin, end, value);
    if (status == std::errc::result_out_of_range)
        throw FormatError(place + ": '" + cell + "' is out of the range of a double");
    if (status != std::errc() || stop != end) throw FormatError(place + ": '" + cell + "' is not a number");
    if (!std::isfinite(value)) throw FormatError(place + ": '" + cell + "' is not a finite number");
    if (std::abs(value) > static_cast<double>(std::numeric_limits<T>::max()))
        throw FormatError(place + ": '" + cell + "' is out of the range of the scalar type");
    return value;
}

inline std::vector<std::string> csv_column_names(const std::vector<std::string>& header_fields, std::size_t count) {
    if (!header_fields.empty()) return header_fields;
    std::vector<std::string> names;
    for (std::size_t c = 1; c <= count; ++c) names.push_back("column " + std::to_string(c));
    return names;
}

}  // namespace detail

// Reads the CSV file at `path` (see the top of this file for the format and the errors).
template <class T = float> CsvTable<T> read_csv(const std::string& path, const CsvOptions& options = {}) {
    const std::string where = "read_csv '" + path + "'";
    detail::require(options.skip_lines >= 0, where, "skip_lines must be >= 0");
    detail::require(options.delimiter != '"' && options.delimiter != '\n' && options.delimiter != '\r', where,
                    "the delimiter cannot be a quote or a line end");
    const auto lines = detail::csv_lines(read_file(path));
    auto next = lines.begin() + std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(options.skip_lines),
                                                          static_cast<std::ptrdiff_t>(lines.size()));
    if (next == lines.end()) throw FormatError("'" + path + "': no " + (options.header ? "header" : "data rows"));
    auto split = [&](const std::pair<Index, std::string>& line) {
        return detail::CsvLine("'" + path + "'", line.first).split(line.second, options.delimiter);
    };
    const Index shape_line = next->first;
    std::vector<std::string> header_fields;
    if (options.header) header_fields = split(*next++);
    const std::size_t width = options.header ? header_fields.size() : split(*next).size();
    const std::vector<std::string> names = detail::csv_column_names(header_fields, width);

    std::optional<std::size_t> label;
    if (options.label) label = detail::resolve_csv_column(*options.label, names, options.header, where);
    const std::vector<std::size_t> features = detail::csv_feature_columns(options, names, label, where);

    CsvTable<T> table;
    for (std::size_t c : features) table.feature_names.push_back(names[c]);
    if (label) table.label_name = names[*label];
    std::vector<double> values;
    for (; next != lines.end(); ++next) {
        const std::vector<std::string> fields = split(*next);
        const detail::CsvLine line("'" + path + "'", next->first);
        if (fields.size() != width)
            throw FormatError("'" + path + "' line " + std::to_string(next->first) + ": " + std::to_string(fields.size()) +
                              " fields, but line " + std::to_string(shape_line) + (options.header ? " (the header)" : "") +
                              " has " + std::to_string(width));
        auto name_of = [&](std::size_t c) { return line.place(c + 1) + " ('" + names[c] + "')"; };
        if (label && fields[*label].empty()) {
            if (options.missing == MissingValues::skip_row) continue;
            throw FormatError(name_of(*label) + ": the label is empty");
        }
        std::vector<double> row;
        for (std::size_t c : features) {
            const std::optional<double> value = detail::parse_csv_number<T>(fields[c], name_of(c));
            if (value) row.push_back(*value);
            else if (options.missing == MissingValues::fill) row.push_back(options.fill_value);
            else if (options.missing == MissingValues::skip_row) break;
            else throw FormatError(name_of(c) + ": missing value ('" + fields[c] +
                                   "'); CsvOptions::missing can fill such cells or skip their rows");
        }
        if (row.size() != features.size()) continue;  // a missing value with skip_row
        values.insert(values.end(), row.begin(), row.end());
        if (label) table.labels.push_back(fields[*label]);
        table.lines.push_back(next->first);
    }
    if (table.lines.empty()) throw FormatError("'" + path + "': no data rows");
    const auto count = static_cast<Index>(table.lines.size());
    table.samples = Tensor<T>(count, static_cast<Index>(features.size()), 1, 1);
    std::transform(values.begin(), values.end(), table.samples.data(), [](double v) { return static_cast<T>(v); });
    return table;
}

// An (N, D) matrix (any Eigen matrix expression) as N samples of shape (D, 1, 1).
template <class Derived> Tensor<typename Derived::Scalar> tensor_from_matrix(const Eigen::MatrixBase<Derived>& matrix) {
    using T = typename Derived::Scalar;
    Tensor<T> tensor(matrix.rows(), matrix.cols(), 1, 1);
    MatrixView<T>(tensor.data(), matrix.rows(), matrix.cols()) = matrix;
    return tensor;
}

// A batch of N samples of any shape (C, H, W) as an (N, C*H*W) row-major matrix, row n =
// sample n (the elements in memory order).
template <class T> Matrix<T> matrix_from_tensor(const Tensor<T>& tensor) {
    return as_matrix<T>(view(tensor));
}

}  // namespace latent
