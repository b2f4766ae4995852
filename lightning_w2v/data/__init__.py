"""Data: audio I/O, the 16 kHz cache, samplers, MusicNet / NSynth data modules, demo data."""
from .audio import AudioFileError, check_header, read_audio, resample
from .audiofolder import AudioFolderDataModule
from .cache import CacheBuildError, CacheIndex, build_cache, open_cache
from .cached import CachedAudioDataModule, CropSettings
from .demo import write_demo_musicnet, write_demo_nsynth
from .demo_modules import DemoMusicNetDataModule, DemoNSynthDataModule
from .musicnet import MusicNetDataModule, MusicNetNotFoundError, find_musicnet_dir
from .nsynth import NSynthDataModule, NSynthError, load_nsynth_split
from .sampling import SecondsBatchSampler, make_segments

__all__ = [
    "AudioFileError",
    "AudioFolderDataModule",
    "CacheBuildError",
    "CacheIndex",
    "CachedAudioDataModule",
    "CropSettings",
    "DemoMusicNetDataModule",
    "DemoNSynthDataModule",
    "MusicNetDataModule",
    "MusicNetNotFoundError",
    "NSynthDataModule",
    "NSynthError",
    "SecondsBatchSampler",
    "build_cache",
    "check_header",
    "find_musicnet_dir",
    "load_nsynth_split",
    "make_segments",
    "open_cache",
    "read_audio",
    "resample",
    "write_demo_musicnet",
    "write_demo_nsynth",
]
