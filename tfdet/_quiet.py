"""TensorFlow's start-up notices, filtered: before absl's logging is initialised, TF's C++ code
writes lines straight to stderr (the oneDNN notice, "Could not find cuda drivers", the CPU
feature guard, a failed cuInit on machines without a GPU) that TF_CPP_MIN_LOG_LEVEL does not
reach. import_tensorflow() imports TF (and touches its devices once) with file descriptor 2
redirected, then writes back every line that is not one of those notices, so real errors still
show. TFDET_VERBOSE_STARTUP=1 keeps everything."""
import contextlib
import os
import re
import sys

_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d\d"  # absl INFO / WARNING lines
    r"|E\d{4} .*(cuInit|cuda|CUDA)"  # no GPU on this machine
    r"|To enable the following instructions:)")


def import_tensorflow():
    """Imports tensorflow without its start-up notices (see the module docstring)."""
    if "tensorflow" in sys.modules or os.environ.get("TFDET_VERBOSE_STARTUP"):
        import tensorflow  # noqa: F401
        return
    import tempfile
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr descriptor: nothing to filter
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines()
                    if line.strip() and not _NOISE.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def is_terminal(stream):
    """Whether `stream` (sys.stdout / sys.stderr) is an interactive terminal: progress bars
    redraw there and print a line per interval otherwise."""
    return hasattr(stream, "isatty") and stream.isatty()


@contextlib.contextmanager
def tf_info_muted():
    """Inside: TF's INFO lines (absl and the `tensorflow` logger: signatures, checkpoint
    sharding, assets, fingerprints) are not printed; warnings and errors are."""
    from absl import logging as absl_logging
    import tensorflow as tf
    logger, verbosity = tf.get_logger(), absl_logging.get_verbosity()
    level = logger.level
    logger.setLevel("WARNING")
    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
        absl_logging.set_verbosity(verbosity)
