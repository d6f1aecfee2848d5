"""Tools run off the device, one package per purpose: evaluation (with the model card drawn from
it), fleet and trial. The device never imports this."""
