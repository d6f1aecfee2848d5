"""Deployments: a watchlist made for one deployment, at stated sites, devices and times, with
its purpose and who authorised it; its reference photos kept encrypted for operators only, and
all of it withdrawn at the deployment's end. Sits on fleet and trial; neither imports it."""
