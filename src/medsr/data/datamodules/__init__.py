"""LightningDataModules: any folder (and the shipped samples), DF2K, MESSIDOR-2, benchmark sets."""

from medsr.data.datamodules.base import SRDataModule
from medsr.data.datamodules.benchmark import BenchmarkDataModule
from medsr.data.datamodules.df2k import DF2KDataModule
from medsr.data.datamodules.folder import FolderDataModule
from medsr.data.datamodules.messidor import MessidorDataModule

__all__ = [
    "BenchmarkDataModule",
    "DF2KDataModule",
    "FolderDataModule",
    "MessidorDataModule",
    "SRDataModule",
]
