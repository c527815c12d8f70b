// face_inpainting: learn to fill in the holes cut into faces.
//
// Data: the 400 Olivetti faces at their full 64x64 (pixel / 255; images of the ORL layout,
// 92x112, are resized to 64x64 bicubic and clamped). Training: subjects 1-35; test: subjects
// 36-40 (people the network has never seen). Each input gets `--boxes` black 8x8 boxes at random
// positions (BoxOcclusion: fresh boxes per batch and epoch; the test faces once, with a fixed
// seed); the target is the whole clean face.
//
// The network: an encoder-decoder with strided convolutions down to 16x16 and transposed
// convolutions back up, all 3x3 with "same" padding:
//   encoder  Conv2D(32, stride 2) ReLU                     64x64 -> 32x32
//            Conv2D(64, stride 2) ReLU                     32x32 -> 16x16
//            Conv2D(64) ReLU, Conv2D(64) ReLU              (code: 64x16x16)
//   decoder  ConvTranspose2D(64, stride 2) ReLU            -> 32x32
//            ConvTranspose2D(32, stride 2) ReLU            -> 64x64
//            Conv2D(1) Sigmoid
// Each output pixel depends on a 37x37 window of the input, enough to see past an 8x8 hole to
// the face around it. Working at 16x16 in the middle keeps it cheap: 53 million multiply-adds
// per face, against 144 million for the same widths with max-pooling and upsampling (whose
// convolutions run at 32x32 and 64x64), for a better result in the same number of epochs.
// Loss: mean squared error over all pixels; Adam (lr 1e-3), batch 25.
//
// masked_psnr_db in the RESULT line is the PSNR over the occluded pixels only: the pixels the
// network had to invent (masked_input_psnr_db: the same pixels left black). The mask comes from
// corrupting an all-ones batch with the same corruption and seed (the box positions depend on
// the seed and the sample only), because a black pixel of a face looks like a box pixel.
#include "common.hpp"

namespace {

using namespace latent;

constexpr const char* program = "face_inpainting";
constexpr Index face_size = 64;
constexpr Index box_size = 8;

Autoencoder<float> build_model(std::uint64_t seed) {
    Encoder<float> encoder{
        Conv2D<float>(32, 3, 2), ReLU<float>(),
        Conv2D<float>(64, 3, 2), ReLU<float>(),
        Conv2D<float>(64, 3), ReLU<float>(),
        Conv2D<float>(64, 3), ReLU<float>(),
    };
    Decoder<float> decoder{
        ConvTranspose2D<float>(64, 3, 2), ReLU<float>(),
        ConvTranspose2D<float>(32, 3, 2), ReLU<float>(),
        Conv2D<float>(1, 3), Sigmoid<float>(),
    };
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{1, face_size, face_size}, seed);
}

// PSNR over the pixels where `mask` is 0 (inside a box).
double masked_psnr(const example::Images& output, const example::Images& clean, const example::Images& mask) {
    double sum = 0;
    Index count = 0;
    for (Index i = 0; i < clean.size(); ++i)
        if (mask.data()[i] == 0.0f) {
            const double difference = static_cast<double>(output.data()[i]) - clean.data()[i];
            sum += difference * difference;
            ++count;
        }
    return count == 0 ? INFINITY : 10.0 * std::log10(1.0 / (sum / static_cast<double>(count)));
}

int run(int argc, char** argv) {
    example::CommonOptions options;
    options.data = "../shared/data/olivetti/olivetti64";
    options.epochs = 30;
    options.batch = 25;
    options.out = "out/face_inpainting";
    Index boxes = 3;
    example::CommandLine cli(program,
                             "Trains a convolutional encoder-decoder to fill in black 8x8 boxes cut into Olivetti faces\n"
                             "(64x64) of subjects 1-35 and tests it on subjects 36-40. Writes DIR/grid.png (rows: clean,\n"
                             "occluded, filled in), DIR/history.csv, DIR/model.latent and ends with a RESULT line\n"
                             "(masked_psnr_db: PSNR over the occluded pixels only).\n");
    example::add_common_flags(cli, options,
                              "Olivetti faces: an olivetti64 folder (sSS_KK.pgm) or an ORL folder (sS/K.pgm)");
    cli.integer("boxes", boxes, Index{1}, Index{64}, "8x8 boxes per face");
    if (!cli.parse(argc, argv)) return 0;

    example::start(program, options);
    const std::string folder = example::resolve_data(options, options.data);
    const example::Faces faces = example::load_faces(folder);
    const example::TrainTest split = example::split_faces(faces, options.train_limit, options.test_limit);
    const example::Images train = example::resize_faces(split.train, face_size);
    const example::Images test = example::resize_faces(split.test, face_size);
    std::cout << "Olivetti faces from '" << folder << "': " << train.dimension(0) << " training (subjects 1-35), "
              << test.dimension(0) << " test (subjects 36-40), 64x64; " << boxes << " boxes of 8x8 per face\n";

    example::prepare_output(options);
    Autoencoder<float> model = build_model(options.seed);
    if (!options.quiet) model.summary(std::cout);
    std::cout.flush();  // before the progress lines on stderr

    const BoxOcclusion corruption(box_size, boxes);
    FitOptions<float> fit = example::fit_options(options);
    fit.corruption = corruption;
    Adam<float> adam(1e-3);
    const example::Stopwatch clock;
    model.fit(train, train, MeanSquaredError<float>(), adam, fit);
    const double train_seconds = clock.seconds();

    const std::uint64_t test_seed = example::test_corruption_seed(options);
    const example::Images occluded_test = example::corrupt_once(corruption, test, test_seed);
    example::Images ones(test.dimensions());
    ones.setConstant(1.0f);
    const example::Images mask = example::corrupt_once(corruption, ones, test_seed);
    const example::Images filled = model.reconstruct(occluded_test);
    example::save_grid(options, {test, occluded_test, filled}, 10, 2);
    model.save(example::output_path(options, "model.latent"));
    std::cout << "wrote grid.png, history.csv and model.latent to '" << options.out << "'\n";
    example::print_result(filled, occluded_test, test, train_seconds,
                          " masked_psnr_db=" + example::number(masked_psnr(filled, test, mask), 3) +
                              " masked_input_psnr_db=" + example::number(masked_psnr(occluded_test, test, mask), 3));
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return example::guarded_main(program, argc, argv, run); }
