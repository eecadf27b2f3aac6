//! A whole lab's life as library calls: [`start_lab`] plans, renders, provisions and
//! brings up a lab (removing what it started when that fails); [`take_down`] stops and
//! deletes it. `lab up`, `lab drill`, `lab down` and `lab practice` all go through here;
//! nothing here parses flags or prints anything but progress lines.

use std::path::{Path, PathBuf};

use crate::bringup::Bringup;
use crate::provider::{self, AwsOptions, AwsProvider, LocalProvider, Provider, ProviderChoice};
use crate::render::Renderer;
use crate::state::{ClusterState, LabHome, Phase, State, StateError};
use crate::status::LabStatus;
use crate::topology::Topology;
use crate::LabError;

/// Plans, renders, starts and brings up a lab; on failure removes what it started.
pub fn start_lab(
    home: &LabHome,
    topology: &Topology,
    renderer: &Renderer,
    choice: &ProviderChoice,
    progress: &mut dyn FnMut(&str),
) -> Result<(State, Box<dyn Provider>), LabError> {
    if let Some(existing) = home.load()? {
        return Err(LabError::AlreadyUp {
            home: home.root().to_owned(),
            topology: existing.topology,
        });
    }
    let provider = provider::for_choice(choice, home)?;
    let plan = provider.plan(topology, home)?;
    let mut rendered = Vec::new();
    for (_, node) in plan.nodes() {
        rendered.push((node.state.config.clone(), renderer.render_node(&node.context)?));
    }
    provider.preflight(&plan)?;
    progress(&format!(
        "topology {} ({}), provider {}, home {}",
        topology.name,
        topology.description,
        provider.name(),
        home.root().display()
    ));
    let mut state = State {
        provider: provider.name().to_owned(),
        topology: topology.name.clone(),
        phase: Phase::Starting,
        labnode: provider.local_labnode().to_owned(),
        clusters: plan
            .clusters
            .iter()
            .map(|c| ClusterState {
                name: c.name.clone(),
                seal: c.seal,
                dr_role: c.dr_role,
                nodes: c.nodes.iter().map(|n| n.state.clone()).collect(),
            })
            .collect(),
        aws: None,
    };
    home.save(&state)?;
    let result = provider
        .provision(&plan, home, &mut state, &rendered, renderer)
        .map_err(LabError::from)
        .and_then(|()| place_files(provider.as_ref(), &state, &rendered))
        .and_then(|()| {
            Bringup {
                home,
                provider: provider.as_ref(),
                progress: &mut *progress,
            }
            .run(&mut state)
            .map_err(LabError::from)
        });
    if let Err(error) = result {
        progress("bring-up failed; stopping what was started (logs are kept)");
        let cleanup = provider
            .teardown(home, Some(&state))
            .map_err(LabError::from)
            .and_then(|lines| {
                lines.iter().for_each(|line| progress(line));
                home.remove_runtime().map_err(LabError::from)
            });
        if let Err(cleanup) = cleanup {
            progress(&format!("cleanup failed too ({cleanup}); run `lab down`"));
        }
        return Err(LabError::UpFailed {
            source: Box::new(error),
            home: home.root().to_owned(),
        });
    }
    Ok((state, provider))
}

/// What `lab up` prints once a lab is up: the status table, where each cluster's
/// credentials are, and how to use the lab.
pub fn up_summary(home: &LabHome, state: &State, status: &LabStatus) -> String {
    let mut text = status.table();
    for cluster in &state.clusters {
        text.push_str(&format!(
            "credentials for {}: {} (lab creds {0})\n",
            cluster.name,
            home.creds_path(&cluster.name).display()
        ));
    }
    text.push_str("use it: eval \"$(lab env)\"  or  lab shell\n");
    text
}

/// Uploads each rendered config and creates each data directory on the node's host.
fn place_files(
    provider: &dyn Provider,
    state: &State,
    rendered: &[(PathBuf, String)],
) -> Result<(), LabError> {
    let nodes = state.clusters.iter().flat_map(|c| &c.nodes);
    for (node, (path, text)) in nodes.zip(rendered) {
        let host = provider.host(node);
        host.upload(text.as_bytes(), path)?;
        let data = node.data.display().to_string();
        let out = host.exec(Path::new("mkdir"), &["-p", &data])?;
        if !out.success {
            return Err(LabError::Io {
                path: node.data.clone(),
                source: std::io::Error::other(out.stderr.trim().to_owned()),
            });
        }
    }
    Ok(())
}

/// What [`take_down`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// The lab home existed.
    pub existed: bool,
    /// The home was deleted too, logs included.
    pub purged: bool,
}

impl Removal {
    /// The closing line of `lab down`.
    pub fn summary(self, home: &LabHome) -> String {
        match (self.existed, self.purged) {
            (false, _) => format!("no lab in {}; nothing to do", home.root().display()),
            (true, true) => format!("lab removed, {} deleted", home.root().display()),
            (true, false) => format!(
                "lab removed; logs kept in {} (`lab down --purge` deletes them)",
                home.root().display()
            ),
        }
    }
}

/// Stops every node of the lab in `home` and deletes what its provider created (every
/// node found under the home when `state.json` is unreadable); with `sweep`, also every
/// AWS resource tagged with the lab's name. Keeps the logs unless `purge`.
pub fn take_down(
    home: &LabHome,
    purge: bool,
    sweep: Option<&AwsOptions>,
    progress: &mut dyn FnMut(&str),
) -> Result<Removal, LabError> {
    let state = match home.load() {
        Ok(state) => state,
        Err(StateError::Corrupt { path, .. }) => {
            eprintln!(
                "warning: {} is unreadable; stopping every node found under the lab home",
                path.display()
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    let provider: Box<dyn Provider> = match &state {
        Some(state) => provider::for_state(state, home)?,
        None => Box::new(LocalProvider::new(PathBuf::new())),
    };
    for line in provider.teardown(home, state.as_ref())? {
        progress(&line);
    }
    if let Some(options) = sweep {
        let mut options = options.clone();
        let recorded = state.as_ref().and_then(|s| s.aws.as_ref());
        if let Some(aws) = recorded.filter(|_| options.name.is_none()) {
            options.name = aws.ec2_lab.as_ref().map(|lab| lab.name.clone());
            options.region = options.region.or_else(|| Some(aws.region.clone()));
            options.endpoint = options
                .endpoint
                .or_else(|| (!aws.endpoint.is_empty()).then(|| aws.endpoint.clone()));
        }
        let sweeper = AwsProvider::new(LocalProvider::new(PathBuf::new()), home, options);
        for line in sweeper.sweep()? {
            progress(&line);
        }
    }
    let existed = home.root().exists();
    if purge {
        home.purge()?;
    } else {
        home.remove_runtime()?;
    }
    Ok(Removal {
        existed,
        purged: purge,
    })
}
