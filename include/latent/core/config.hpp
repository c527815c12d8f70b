// A layer's hyper-parameters as an ordered list of named values: what a model file stores to
// rebuild the layer, and what summary() and error messages print.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "errors.hpp"

namespace latent {

class Config {
public:
    Config& set(const std::string& key, std::int64_t value) { return put(key, std::to_string(value)); }
    Config& set(const std::string& key, int value) { return set(key, std::int64_t{value}); }
    Config& set(const std::string& key, long long value) { return set(key, std::int64_t{value}); }
    Config& set(const std::string& key, const std::string& value) { return put(key, value); }
    Config& set(const std::string& key, const char* value) { return put(key, value); }
    // Doubles are written with the shortest text that reads back to the same value.
    Config& set(const std::string& key, double value) {
        char text[64];
        const auto result = std::to_chars(text, text + sizeof text, value);
        return put(key, std::string(text, result.ptr));
    }

    bool has(const std::string& key) const { return find(key) != nullptr; }

    std::int64_t get_int(const std::string& key) const {
        const std::string& text = get_string(key);
        std::int64_t value = 0;
        const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
        if (result.ec != std::errc() || result.ptr != text.data() + text.size())
            throw FormatError("config value '" + key + "' is not an integer: '" + text + "'");
        return value;
    }
    double get_double(const std::string& key) const {
        const std::string& text = get_string(key);
        double value = 0;
        const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
        if (result.ec != std::errc() || result.ptr != text.data() + text.size())
            throw FormatError("config value '" + key + "' is not a number: '" + text + "'");
        return value;
    }
    const std::string& get_string(const std::string& key) const {
        if (const std::string* value = find(key)) return *value;
        throw FormatError("config has no value '" + key + "'");
    }

    const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }

    // "filters=32 kernel=3x3", for summaries.
    std::string str() const {
        std::string text;
        for (const auto& [key, value] : entries_) text += (text.empty() ? "" : " ") + key + "=" + value;
        return text;
    }

private:
    Config& put(const std::string& key, std::string value) {
        for (auto& entry : entries_)
            if (entry.first == key) {
                entry.second = std::move(value);
                return *this;
            }
        entries_.emplace_back(key, std::move(value));
        return *this;
    }
    const std::string* find(const std::string& key) const {
        for (const auto& entry : entries_)
            if (entry.first == key) return &entry.second;
        return nullptr;
    }

    std::vector<std::pair<std::string, std::string>> entries_;
};

}  // namespace latent
