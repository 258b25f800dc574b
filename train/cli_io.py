"""What the training scripts' command lines share: one-line errors, and the file a command writes.
Torch-free (set_arch.py and plot_losses.py use it without torch)."""
import os


# PyTorch's messages for frames too small for an architecture (its reflect padding, normalisation
# and pooling at the coarsest level): train.py's first step and golden.py say so in one line
TOO_SMALL = ("Padding size should be less than", "Expected more than 1 spatial element",
             "Expected more than 1 value per channel", "Kernel size can't be greater than",
             "Output size is too small", "Calculated output size")


def first_line(e):
    """An exception's message, its first line alone (torch's and the unpickler's run to pages)."""
    return (str(e).splitlines() or [""])[0]


def out_file_error(opt, path, inputs=(), example="model.safetensors"):
    """Why PATH (the option opt) cannot be the file a command writes, in one line, or None when it
    can: it is a folder, its folder does not exist, or it is one of inputs, (option, path) pairs
    of the files the command reads (None: not given), which are never written; the same file under
    another name, a hard link or a symbolic link, counts as the same."""
    if os.path.isdir(path):
        return "%s %s is a folder: give the file to write, e.g. %s" % (opt, path, os.path.join(path, example))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return "%s %s: no folder %s (make it first)" % (opt, path, folder)
    for iopt, ipath in inputs:
        if ipath is not None and os.path.exists(path) and os.path.exists(ipath) and os.path.samefile(path, ipath):
            return "%s %s is %s (%s), which this command reads and never writes: give another file " \
                "to write" % (opt, path, iopt, ipath)
    return None
