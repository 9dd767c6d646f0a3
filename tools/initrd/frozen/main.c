/* The image's interpreter: CPython with the runtime, its libraries and the
 * standard-library modules they import frozen into the executable
 * (tools/initrd/python_freeze.py writes frozen_table.c beside this file).
 *
 * It starts like `python3.11 -I` (the same command line: -m, -c, -X importtime)
 * but never looks for modules on disk: sys.path is empty, no site module runs
 * and no PYTHON* variable is read, so nothing on a mounted disk or in the
 * kernel command line's environment can put code in front of the frozen
 * modules. Extension modules kept as files are found by the frozen
 * _extension_files module, which knows their exact paths.
 *
 * The command line itself is trusted: only /init runs this, with fixed
 * arguments (it never passes its own on). */
#include "Python.h"

extern const struct _frozen heads_frozen_modules[];

static int fail(PyStatus status, PyConfig *config)
{
    PyConfig_Clear(config);
    if (PyStatus_IsExit(status)) {
        return status.exitcode;
    }
    Py_ExitStatusException(status); /* prints the error and exits */
}

int main(int argc, char **argv)
{
    PyStatus status;
    PyConfig config;

    PyImport_FrozenModules = heads_frozen_modules;
    PyConfig_InitPythonConfig(&config);
    config.isolated = 1;
    config.use_environment = 0;
    config.user_site_directory = 0;
    config.safe_path = 1;
    config.site_import = 0;
    config.write_bytecode = 0;
    config.pathconfig_warnings = 0;
    config.use_frozen_modules = 1;
    config.module_search_paths_set = 1; /* and left empty */

    /* The arguments first: setting a string pre-initialises Python, which
     * must see -X utf8 and the like. */
    status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (PyStatus_Exception(status)) {
        return fail(status, &config);
    }
    /* A fixed home: the interpreter never probes the disk for its landmarks. */
    status = PyConfig_SetString(&config, &config.home, L"/usr");
    if (PyStatus_Exception(status)) {
        return fail(status, &config);
    }
    status = Py_InitializeFromConfig(&config);
    if (PyStatus_Exception(status)) {
        return fail(status, &config);
    }
    PyConfig_Clear(&config);

    PyObject *finder = PyImport_ImportModule("_extension_files");
    if (finder == NULL) {
        PyErr_Print();
        return 1;
    }
    Py_DECREF(finder);
    return Py_RunMain();
}
