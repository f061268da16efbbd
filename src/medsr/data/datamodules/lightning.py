"""The DataModules as Lightning trains with them: each data class plus ``LightningDataModule``.

Only this module imports Lightning. The data configs name these classes (``_target_``);
``medsr.evaluate`` builds the plain ones instead (:func:`medsr.data.datamodules.plain_target`).
"""

from __future__ import annotations

from lightning.pytorch import LightningDataModule

from medsr.data.datamodules.base import SRData
from medsr.data.datamodules.benchmark import BenchmarkData
from medsr.data.datamodules.df2k import DF2KData
from medsr.data.datamodules.folder import FolderData
from medsr.data.datamodules.medical import MedicalData
from medsr.data.datamodules.messidor import MessidorData


class SRDataModule(SRData, LightningDataModule):
    __doc__ = SRData.__doc__


class FolderDataModule(FolderData, LightningDataModule):
    __doc__ = FolderData.__doc__


class DF2KDataModule(DF2KData, LightningDataModule):
    __doc__ = DF2KData.__doc__


class MessidorDataModule(MessidorData, LightningDataModule):
    __doc__ = MessidorData.__doc__


class BenchmarkDataModule(BenchmarkData, LightningDataModule):
    __doc__ = BenchmarkData.__doc__


class MedicalDataModule(MedicalData, LightningDataModule):
    __doc__ = MedicalData.__doc__
