"""ctypes structures and opaque handle types with pynvml's names and fields.

Returning real ctypes structures keeps nvidia-ml-py's behaviour: char-array fields read back
as bytes (busId, name), integer fields wrap like C unsigned ints.
"""

from ctypes import POINTER, Structure, c_char, c_int, c_uint, c_ulonglong

from gpuops_sim import constants as c


class _PrintableStructure(Structure):
    """Structure whose str() lists its fields."""

    def __str__(self):
        parts = ("%s: %s" % (name, getattr(self, name)) for name, _unused in self._fields_)
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))


class struct_c_nvmlDevice_t(Structure):
    pass


c_nvmlDevice_t = POINTER(struct_c_nvmlDevice_t)


class struct_c_nvmlGpuInstance_t(Structure):
    pass


c_nvmlGpuInstance_t = POINTER(struct_c_nvmlGpuInstance_t)


class struct_c_nvmlComputeInstance_t(Structure):
    pass


c_nvmlComputeInstance_t = POINTER(struct_c_nvmlComputeInstance_t)


class nvmlPciInfo_t(_PrintableStructure):
    _fields_ = [
        ("busIdLegacy", c_char * c.NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE),
        ("domain", c_uint),
        ("bus", c_uint),
        ("device", c_uint),
        ("pciDeviceId", c_uint),
        ("pciSubSystemId", c_uint),
        ("busId", c_char * c.NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE),
    ]


class c_nvmlMemory_t(_PrintableStructure):
    _fields_ = [("total", c_ulonglong), ("free", c_ulonglong), ("used", c_ulonglong)]


class c_nvmlMemory_v2_t(_PrintableStructure):
    _fields_ = [
        ("version", c_uint),
        ("total", c_ulonglong),
        ("reserved", c_ulonglong),
        ("free", c_ulonglong),
        ("used", c_ulonglong),
    ]


class c_nvmlUtilization_t(_PrintableStructure):
    _fields_ = [("gpu", c_uint), ("memory", c_uint)]


class c_nvmlProcessInfo_v2_t(_PrintableStructure):
    _fields_ = [
        ("pid", c_uint),
        ("usedGpuMemory", c_ulonglong),
        ("gpuInstanceId", c_uint),
        ("computeInstanceId", c_uint),
    ]


c_nvmlProcessInfo_v3_t = c_nvmlProcessInfo_v2_t
c_nvmlProcessInfo_t = c_nvmlProcessInfo_v3_t


class c_nvmlTemperature_v1_t(_PrintableStructure):
    _fields_ = [("version", c_uint), ("sensorType", c_uint), ("temperature", c_int)]


class c_nvmlGpuInstancePlacement_t(Structure):
    _fields_ = [("start", c_uint), ("size", c_uint)]


class c_nvmlGpuInstanceProfileInfo_t(Structure):
    _fields_ = [
        ("id", c_uint),
        ("isP2pSupported", c_uint),
        ("sliceCount", c_uint),
        ("instanceCount", c_uint),
        ("multiprocessorCount", c_uint),
        ("copyEngineCount", c_uint),
        ("decoderCount", c_uint),
        ("encoderCount", c_uint),
        ("jpegCount", c_uint),
        ("ofaCount", c_uint),
        ("memorySizeMB", c_ulonglong),
    ]


class c_nvmlGpuInstanceProfileInfo_v2_t(_PrintableStructure):
    _fields_ = (
        [("version", c_uint)]
        + c_nvmlGpuInstanceProfileInfo_t._fields_
        + [("name", c_char * c.NVML_DEVICE_NAME_V2_BUFFER_SIZE)]
    )

    def __init__(self):
        super().__init__(version=c.nvmlGpuInstanceProfileInfo_v2)


class c_nvmlGpuInstanceInfo_t(Structure):
    _fields_ = [
        ("device", c_nvmlDevice_t),
        ("id", c_uint),
        ("profileId", c_uint),
        ("placement", c_nvmlGpuInstancePlacement_t),
    ]


class c_nvmlComputeInstancePlacement_t(Structure):
    _fields_ = [("start", c_uint), ("size", c_uint)]


class c_nvmlComputeInstanceProfileInfo_t(Structure):
    _fields_ = [
        ("id", c_uint),
        ("sliceCount", c_uint),
        ("instanceCount", c_uint),
        ("multiprocessorCount", c_uint),
        ("sharedCopyEngineCount", c_uint),
        ("sharedDecoderCount", c_uint),
        ("sharedEncoderCount", c_uint),
        ("sharedJpegCount", c_uint),
        ("sharedOfaCount", c_uint),
    ]


class c_nvmlComputeInstanceProfileInfo_v2_t(_PrintableStructure):
    _fields_ = (
        [("version", c_uint)]
        + c_nvmlComputeInstanceProfileInfo_t._fields_
        + [("name", c_char * c.NVML_DEVICE_NAME_V2_BUFFER_SIZE)]
    )

    def __init__(self):
        super().__init__(version=c.nvmlComputeInstanceProfileInfo_v2)


class c_nvmlComputeInstanceInfo_t(Structure):
    _fields_ = [
        ("device", c_nvmlDevice_t),
        ("gpuInstance", c_nvmlGpuInstance_t),
        ("id", c_uint),
        ("profileId", c_uint),
        ("placement", c_nvmlComputeInstancePlacement_t),
    ]


class nvmlFriendlyObject:
    """Plain object with a struct's fields as attributes (what process lists hold)."""

    def __init__(self, dictionary):
        for key, value in dictionary.items():
            setattr(self, key, value)

    def __str__(self):
        return str(self.__dict__)


def nvmlStructToFriendlyObject(struct):
    """Copy a ctypes structure into an nvmlFriendlyObject, decoding bytes fields."""
    values = {}
    for name, _unused in struct._fields_:
        value = getattr(struct, name)
        values[name] = value.decode() if isinstance(value, bytes) else value
    return nvmlFriendlyObject(values)
