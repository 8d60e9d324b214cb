"""Import MedMod-preprocessed MIMIC-IV and MIMIC-CXR files into the benchmark format.

For sites with credentialed access. The command::

    python -m benchmark_data import-mimic --medmod-root DIR --mimic-iv DIR --mimic-cxr DIR \\
        [--test-subjects FILE] [--val-subjects FILE] [--cxr-images DIR] --out DIR [--seed N]

reads MedMod's ``mimic4extract`` output (the task listfiles and episode time series),
MIMIC-IV's ICU stays, admissions and patients, and MIMIC-CXR-JPG's metadata and CheXpert
labels, and writes the format of docs/benchmark-format.md:

- the stays of the four EHR tasks' listfiles, split by patient (:mod:`.cohort`);
- their time series and its hourly discretization (:mod:`.ehr`);
- the chest X-rays paired the MedMod way but without look-ahead, and the radiology units
  (:mod:`.cxr`);
- unit lists, test labels, scenarios and demographics (:mod:`.importer`).

Input files may be gzip-compressed (``.csv.gz``). The public part of an imported benchmark
holds MIMIC identifiers (and, with ``--cxr-images``, derived images), so it may only be
shared with credentialed MIMIC users.
"""

from benchmark_data.mimic.cohort import map_insurance, map_race
from benchmark_data.mimic.importer import import_mimic
from benchmark_data.mimic.sources import MimicImportError, read_subject_set

__all__ = ["MimicImportError", "import_mimic", "map_insurance", "map_race", "read_subject_set"]
