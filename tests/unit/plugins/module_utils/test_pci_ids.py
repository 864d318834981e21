# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

from ansible_collections.gpuops.cluster.plugins.module_utils import pci_ids

SAMPLE = """#
#	List of PCI ID's
#
0f00  Some Other Vendor
\t2330  Not an NVIDIA device
10de  NVIDIA Corporation
\t20b0  GA100 [A100 SXM4 40GB]
\t\t10de 134f  A100 SXM4 40GB
# a comment inside the vendor block
\t2321  GH100
\t2204  GA102 [GeForce RTX 3090]
10df  Emulex Corporation
\t2330  Not NVIDIA either
C 03  Display controller
"""


def test_parse_pci_ids_reads_only_the_nvidia_block():
    names = pci_ids.parse_pci_ids(SAMPLE)
    assert names == {"20b0": "A100 SXM4 40GB", "2321": "GH100", "2204": "GeForce RTX 3090"}


def test_parse_pci_ids_vendor_on_first_line_and_missing_vendor():
    assert pci_ids.parse_pci_ids("10de  NVIDIA\n\t1eb8  TU104GL [Tesla T4]\n") == {"1eb8": "Tesla T4"}
    assert pci_ids.parse_pci_ids("8086  Intel\n\t1234  Foo\n") == {}


def test_our_table_wins_over_old_pci_ids(tmp_path):
    (tmp_path / "usr/share/hwdata").mkdir(parents=True)
    (tmp_path / "usr/share/hwdata/pci.ids").write_text(SAMPLE)
    names = pci_ids.ProductNames(str(tmp_path))
    assert names.lookup("0x2321") == "H100 NVL 94GB"  # pci.ids only says GH100
    assert names.lookup("0x2335") == "H200 SXM 141GB"  # absent from old pci.ids
    assert names.lookup("0x2204") == "GeForce RTX 3090"  # from hwdata's pci.ids
    assert names.lookup("0xffff") is None


def test_table_helpers():
    assert pci_ids.known_product("0x20B0") == "A100 SXM4 40GB"
    assert pci_ids.known_product("1af1").startswith("NVSwitch")
    assert pci_ids.known_architecture("0x2330") == "hopper"
    assert pci_ids.is_datacenter("0x26b9")
    assert not pci_ids.is_datacenter("0x2204")
    assert pci_ids.read_pci_ids("/nonexistent-root") == {}
