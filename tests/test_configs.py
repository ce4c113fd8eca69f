"""Every zoo row has its config file, and the file builds the row it is named after with the
schedule its suffix names."""
import pathlib

from tfdet import models
from tfdet.config import load_experiment

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def test_every_row_has_a_config_naming_it():
    for name in models.list_models():
        exp = load_experiment(str(CONFIGS / f"{name}.gin"))
        assert exp.model.name == name
        steps = {"_1x": (90000, 180000), "_2x": (180000, 360000)}[name[-3:]]
        assert exp.schedule.total_steps in steps, name  # FPN at 16 / C4 at 8 images a step
        assert exp.schedule.total_steps * exp.train.global_batch_size in (
            90000 * 16, 180000 * 16), name
