// Reads detection cases and prints latent's roc_auc and average_precision for each, for
// sklearn_metrics.py to compare with scikit-learn. Input (a file named on the command line):
// per case, a line "N", a line of N labels (0 or 1) and a line of N scores. Output: one line
// "<roc_auc> <average_precision>" per case, with 17 significant digits.
#include <latent/data/detection_metrics.hpp>

#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: detection_metrics_cases CASES_FILE\n";
        return 2;
    }
    std::ifstream in(argv[1]);
    if (!in) {
        std::cerr << "detection_metrics_cases: cannot open '" << argv[1] << "'\n";
        return 2;
    }
    try {
        std::size_t count = 0;
        for (int index = 0; in >> count; ++index) {
            std::vector<int> labels(count);
            std::vector<double> scores(count);
            for (int& label : labels) in >> label;
            for (double& score : scores) in >> score;
            if (!in) {
                std::cerr << "detection_metrics_cases: case " << index << " is truncated\n";
                return 2;
            }
            std::printf("%.17g %.17g\n", latent::roc_auc(labels, scores), latent::average_precision(labels, scores));
        }
    } catch (const std::exception& error) {
        std::cerr << "detection_metrics_cases: " << error.what() << "\n";
        return 1;
    }
    return 0;
}
