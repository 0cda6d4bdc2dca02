"""DiffTune (Wang & Liu 2023): instructions sampled from a latent diffusion LM (LD4LG) trained on
an instruction set, with topic-diversity-enhancing noise. See the modules for each piece."""
