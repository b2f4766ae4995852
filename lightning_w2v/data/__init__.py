"""Data: audio I/O, the 16 kHz cache, samplers, the MusicNet / NSynth / MAESTRO data modules, demo data."""
from .audio import AudioFileError, check_header, read_audio, resample
from .audiofolder import AudioFolderDataModule
from .cache import CacheBuildError, CacheIndex, build_cache, open_cache
from .cached import CachedAudioDataModule, CropSettings
from .demo import write_demo_musicnet, write_demo_nsynth
from .demo_modules import DemoMusicNetDataModule, DemoMusicNetTranscriptionDataModule, DemoNSynthDataModule
from .musicnet import MusicNetDataModule, MusicNetNotFoundError, find_musicnet_dir
from .nsynth import NSynthDataModule, NSynthError, load_nsynth_split
from .sampling import SecondsBatchSampler, make_segments
from .sets.emomusic import EmomusicDataModule
from .sets.giantsteps import GiantStepsKeyDataModule
from .sets.gtzan import GTZANDataModule
from .sets.manifest import ManifestDataModule
from .sets.mtt import MTTDataModule
from .transcription import MaestroTranscriptionDataModule, MusicNetTranscriptionDataModule

__all__ = [
    "AudioFileError",
    "AudioFolderDataModule",
    "CacheBuildError",
    "CacheIndex",
    "CachedAudioDataModule",
    "CropSettings",
    "DemoMusicNetDataModule",
    "DemoMusicNetTranscriptionDataModule",
    "DemoNSynthDataModule",
    "EmomusicDataModule",
    "GTZANDataModule",
    "GiantStepsKeyDataModule",
    "MTTDataModule",
    "ManifestDataModule",
    "MaestroTranscriptionDataModule",
    "MusicNetDataModule",
    "MusicNetTranscriptionDataModule",
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
