"""course_utils: the code the DDPM course notebooks share, one small module per idea.

Names follow the literature (Ho et al. 2020; Nichol & Dhariwal 2021) and stay the same in
notebooks, walkthroughs and answer sheets: ``betas``, ``alphas``, ``alphas_cumprod``,
``q_sample``, ``p_sample``, ``T``. Steps are 0-based in code: the paper's t = 1..T is 0..T-1 here.
"""
from .checkpoints import CheckpointError, config_differences, config_to_dict, load_checkpoint, save_checkpoint
from .settings import PRECISION_SETTINGS, is_quick, pick, precision_setting
from .data import (
    DEBIAN_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASSES,
    DatasetNotFoundError,
    default_data_root,
    fashion_mnist,
    prepare_fashion_mnist,
    to_minus_one_one,
)
from .device import (autocast_for, channels_last_pays, compute_dtype, cpu_has_native_bf16, get_device,
                     measure_bf16_speedup, measure_channels_last_speedup, model_device, precision_choice, randn_on,
                     sampling_mode, seed_everything)
from .diffusion import (
    check_timesteps,
    extract,
    predict_noise_from_v,
    predict_noise_from_x0,
    predict_x0_from_noise,
    q_posterior_mean_variance,
    q_sample,
    q_sample_iterative,
    v_target,
)
from .metrics import (
    N_REFERENCE,
    class_histogram,
    classifier_features,
    classifier_probs,
    confident_share,
    feature_stats,
    fid,
    frechet_distance,
    load_classifier,
    reference_images,
    nfe_sweep,
    sample_quality,
)
from .models import PREDICTIONS, Attention, ResBlock, UNet, UNetConfig, count_parameters, sinusoidal_embedding
from .plotting import (animate_grids, figure_png, image_grid, plot_schedules, set_lecture_style, show_image_rows,
                       show_images)
from .jupyter import interact_with_preview, tqdm
from .score import (
    GaussianMixture,
    ToyNoiseMLP,
    corrector_step_size,
    langevin_dynamics,
    noise_from_score,
    pc_sample_loop,
    score_from_noise,
    train_toy_noise_model,
)
from .pretrained import (FLOW_CHECKPOINT, GUIDANCE_CHECKPOINT, PRETRAINED_CHECKPOINT, REPO_ROOT, RUN_CHECKPOINT,
                         find_checkpoint, load_pretrained)
from .samplers import (
    ddim_invert,
    ddim_sample_loop,
    ddim_sigma,
    ddim_step,
    ddim_timesteps,
    p_mean_variance,
    p_sample,
    p_sample_loop,
    predict_noise,
    slerp,
)
from .schedules import (
    SCHEDULE_KINDS,
    Schedule,
    betas_from_alphas_cumprod,
    cosine_alphas_cumprod,
    linear_betas,
    make_schedule,
    rescale_zero_terminal_snr,
    schedule_from_betas,
    sigmoid_alphas_cumprod,
)
from .solvers import (PARAMETERISATIONS, SPACINGS, convert_prediction, dpm_solver_2m_sample, from_x0_noise,
                      heun_sample, predict_x0, solver_timesteps, to_x0_noise)
from .training import (EMA, LOSS_WEIGHTINGS, TRAIN_IMAGES, DiffusionConfig, TrainResult, default_config,
                       diffusion_loss, flow_config, guidance_config, learning_rate, loss_weights,
                       measure_training_speed, train, train_step)
from .flow import (FLOW_TIME_SCALE, TIME_SAMPLINGS, ExactVelocityModel, flow_loss, flow_path, flow_sample, flow_target,
                   flow_time_grid, flow_velocity, mixture_velocity, sample_flow_times, shift_times, straightness)

__all__ = [
    # settings (environment variables)
    "is_quick", "pick", "precision_setting", "PRECISION_SETTINGS",
    # device and precision
    "get_device", "seed_everything", "model_device", "randn_on", "sampling_mode", "compute_dtype", "precision_choice",
    "autocast_for", "cpu_has_native_bf16", "measure_bf16_speedup", "channels_last_pays", "measure_channels_last_speedup",
    # schedules
    "Schedule", "make_schedule", "schedule_from_betas", "linear_betas", "cosine_alphas_cumprod",
    "sigmoid_alphas_cumprod", "betas_from_alphas_cumprod", "SCHEDULE_KINDS", "rescale_zero_terminal_snr",
    # diffusion
    "check_timesteps", "extract", "q_sample", "q_sample_iterative", "q_posterior_mean_variance",
    "predict_x0_from_noise", "predict_noise_from_x0", "v_target", "predict_noise_from_v",
    # data
    "FASHION_MNIST_CLASSES", "DEBIAN_FASHION_MNIST_DIR", "DatasetNotFoundError", "default_data_root",
    "prepare_fashion_mnist", "fashion_mnist", "to_minus_one_one",
    # score (notebook 08)
    "score_from_noise", "noise_from_score", "GaussianMixture", "ToyNoiseMLP", "train_toy_noise_model",
    "langevin_dynamics", "corrector_step_size", "pc_sample_loop",
    # metrics
    "load_classifier", "classifier_features", "classifier_probs", "feature_stats", "frechet_distance", "fid",
    "confident_share", "class_histogram", "reference_images", "sample_quality", "nfe_sweep", "N_REFERENCE",
    # plotting
    "set_lecture_style", "image_grid", "show_images", "show_image_rows", "plot_schedules", "animate_grids", "figure_png",
    # notebook display: progress bars saved finished, live controls saved with a picture
    "tqdm", "interact_with_preview",
    # models
    "PREDICTIONS", "UNetConfig", "sinusoidal_embedding", "ResBlock", "Attention", "UNet", "count_parameters",
    # training
    "DiffusionConfig", "default_config", "guidance_config", "LOSS_WEIGHTINGS", "loss_weights", "diffusion_loss",
    "train_step", "learning_rate", "flow_config", "EMA", "TRAIN_IMAGES", "measure_training_speed",
    "TrainResult", "train",
    # samplers
    "predict_noise", "p_mean_variance", "p_sample", "p_sample_loop", "ddim_timesteps", "ddim_sigma", "ddim_step",
    "ddim_sample_loop", "ddim_invert", "slerp",
    # flow matching (notebook 10)
    "FLOW_TIME_SCALE", "TIME_SAMPLINGS", "flow_path", "flow_target", "sample_flow_times", "shift_times", "flow_loss",
    "flow_velocity", "flow_time_grid", "flow_sample", "mixture_velocity", "ExactVelocityModel", "straightness",
    # design space (notebook 11)
    "PARAMETERISATIONS", "to_x0_noise", "from_x0_noise", "convert_prediction", "predict_x0", "SPACINGS",
    "solver_timesteps", "heun_sample", "dpm_solver_2m_sample",
    # checkpoints
    "CheckpointError", "config_to_dict", "config_differences", "save_checkpoint", "load_checkpoint",
    # pretrained
    "REPO_ROOT", "RUN_CHECKPOINT", "PRETRAINED_CHECKPOINT", "GUIDANCE_CHECKPOINT", "FLOW_CHECKPOINT", "find_checkpoint",
    "load_pretrained",
]
