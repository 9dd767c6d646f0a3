"""Frozen into the image's interpreter as `_extension_files` and imported
before the runtime (tools/initrd/frozen/main.c): the meta-path finder for
the C extension modules that stay files in the image.

The frozen interpreter's sys.path is empty, so nothing else could find
them; this finder knows each one's exact path in the image and looks
nowhere else. The build appends the table (`FILES.update({...})`).
"""

import sys
from importlib.machinery import ExtensionFileLoader
from importlib.util import spec_from_file_location

# module name -> absolute path in the image
FILES: dict[str, str] = {}


class ExtensionFiles:
    @classmethod
    def find_spec(cls, name, path=None, target=None):  # type: ignore[no-untyped-def]
        file = FILES.get(name)
        if file is None:
            return None
        return spec_from_file_location(name, file, loader=ExtensionFileLoader(name, file))


sys.meta_path.append(ExtensionFiles)
