"""Try-on and editing methods, one module each, plain torch modules over diffusers parts."""
