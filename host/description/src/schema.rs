//! Occopus 1.10's own schema checkers, as tables: the required and optional keys of each
//! resource type, config manager and contextualisation type (spec §2.1–§2.3). Used when no
//! plugin describes a type; a loaded plugin's JSON Schema takes precedence.
//!
//! Owns: the tables and the check against them. Must not: call plugins.

use crate::check::{Cx, field};
use crate::diag::{Code, Diagnostic};
use crate::source::Span;
use crate::yaml::Ix;

/// Keys of one section type.
pub(crate) struct KeySchema {
    pub type_name: &'static str,
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
    /// At least one of these must be present.
    pub one_of: &'static [&'static str],
    /// Keys whose value must be a list (templates and empty values are accepted).
    pub lists: &'static [&'static str],
    /// Keys whose value must be a mapping, with the keys required inside it.
    pub maps: &'static [(&'static str, &'static [&'static str])],
    /// Keys Occopus documents but rejects, with why.
    pub rejected: &'static [(&'static str, &'static str)],
}

const NONE: &[&str] = &[];

/// Resource handler types of Occopus 1.10.
pub(crate) const RESOURCES: &[KeySchema] = &[
    KeySchema {
        type_name: "ec2",
        required: &[
            "type",
            "endpoint",
            "regionname",
            "image_id",
            "instance_type",
        ],
        optional: &[
            "key_name",
            "security_group_ids",
            "subnet_id",
            "tags",
            "name",
        ],
        one_of: NONE,
        lists: &["security_group_ids"],
        maps: &[("tags", NONE)],
        rejected: &[],
    },
    KeySchema {
        type_name: "nova",
        required: &["type", "endpoint", "image_id", "flavor_name", "project_id"],
        optional: &[
            "user_domain_name",
            "region_name",
            "network_id",
            "key_name",
            "security_groups",
            "server_name",
            "floating_ip",
            "floating_ip_pool",
            "volume_size",
            "volume_persist",
            "name",
            "tenant_name",
        ],
        one_of: NONE,
        lists: &["security_groups"],
        maps: &[],
        rejected: &[],
    },
    KeySchema {
        type_name: "azure_vm",
        required: &[
            "type",
            "endpoint",
            "resource_group",
            "location",
            "vm_size",
            "publisher",
            "offer",
            "sku",
            "version",
            "username",
        ],
        optional: &[
            "password",
            "ssh_key_data",
            "server_name",
            "vnet_name",
            "subnet_name",
            "public_ip_needed",
            "customdata",
        ],
        one_of: &["password", "ssh_key_data"],
        lists: NONE,
        maps: &[],
        rejected: &[(
            "nic_name",
            "Occopus 1.10 documents `nic_name` but its schema rejects it; the network interface is always named after the VM",
        )],
    },
    KeySchema {
        type_name: "azure_aci",
        required: &[
            "type",
            "endpoint",
            "resource_group",
            "location",
            "cpu_cores",
            "memory",
            "image",
            "os_type",
            "network_type",
        ],
        optional: &["ports", "gpu_type", "gpu_count", "vnet_name", "subnet_name"],
        one_of: NONE,
        lists: &["ports"],
        maps: &[],
        rejected: &[],
    },
    KeySchema {
        type_name: "cloudbroker",
        required: &["type", "endpoint", "description"],
        optional: &["name", "start_in_vpc"],
        one_of: NONE,
        lists: NONE,
        maps: &[("description", &["deployment_id", "instance_type_id"])],
        rejected: &[],
    },
    KeySchema {
        type_name: "cloudsigma",
        required: &["type", "endpoint", "libdrive_id", "description"],
        optional: &["name"],
        one_of: NONE,
        lists: NONE,
        maps: &[("description", &["cpu", "mem"])],
        rejected: &[],
    },
    KeySchema {
        type_name: "docker",
        required: &["type", "endpoint", "origin", "image", "tag"],
        optional: &["name"],
        one_of: NONE,
        lists: NONE,
        maps: &[],
        rejected: &[],
    },
];

/// Config managers of Occopus 1.10 (`dummy` is what an absent section means).
pub(crate) const CONFIG_MANAGERS: &[KeySchema] = &[
    KeySchema {
        type_name: "dummy",
        required: &["type"],
        optional: NONE,
        one_of: NONE,
        lists: NONE,
        maps: &[],
        rejected: &[],
    },
    KeySchema {
        type_name: "chef",
        required: &["type", "endpoint", "run_list"],
        optional: NONE,
        one_of: NONE,
        lists: &["run_list"],
        maps: &[],
        rejected: &[],
    },
    KeySchema {
        type_name: "puppet_solo",
        required: &["type", "manifests"],
        optional: &["modules", "attributes"],
        one_of: NONE,
        lists: &["manifests", "modules", "attributes"],
        maps: &[],
        rejected: &[],
    },
];

/// Contextualisation types (resolvers) of Occopus 1.10. These are built into the host.
pub(crate) const CONTEXTUALISATIONS: &[KeySchema] = &[
    KeySchema {
        type_name: "cloudinit",
        required: &["type", "context_template"],
        optional: &["attributes"],
        one_of: NONE,
        lists: NONE,
        maps: &[],
        rejected: &[],
    },
    KeySchema {
        type_name: "docker",
        required: &["type", "env"],
        optional: &["command", "context_variables"],
        one_of: NONE,
        lists: &["env"],
        maps: &[],
        rejected: &[],
    },
    KeySchema {
        type_name: "basic",
        required: &["type", "attributes"],
        optional: NONE,
        one_of: NONE,
        lists: NONE,
        maps: &[],
        rejected: &[],
    },
];

/// Keys of the `basic` health check.
pub(crate) const HEALTH_BASIC_KEYS: &[&str] =
    &["type", "ping", "ports", "urls", "mysqldbs", "timeout"];

pub(crate) fn find(table: &'static [KeySchema], type_name: &str) -> Option<&'static KeySchema> {
    table.iter().find(|s| s.type_name == type_name)
}

pub(crate) fn names(table: &'static [KeySchema]) -> impl Iterator<Item = &'static str> {
    table.iter().map(|s| s.type_name)
}

fn is_template_scalar(cx: &Cx<'_>, ix: Ix) -> bool {
    cx.tree
        .as_str(ix)
        .is_some_and(occopus_template::is_template)
}

/// Check the section `map` against `schema`. `what` names the section in messages
/// (`resource of type \`ec2\``); `anchor` is where missing keys are reported.
pub(crate) fn check(
    cx: &mut Cx<'_>,
    schema: &KeySchema,
    map: Ix,
    path: &str,
    what: &str,
    anchor: Span,
) {
    let tree = cx.tree;
    let Some(entries) = tree.as_map(map) else {
        return;
    };
    let allowed: Vec<&str> = schema
        .required
        .iter()
        .chain(schema.optional)
        .copied()
        .collect();
    for (k, v) in entries {
        let Some(key) = tree.key_text(*k) else {
            continue;
        };
        let why = schema
            .rejected
            .iter()
            .find(|(r, _)| *r == key)
            .map(|(_, w)| *w);
        if why.is_some() || !allowed.contains(&key) {
            cx.unknown_key(*k, key, &allowed, path, what, why);
            continue;
        }
        let accept = tree.is_null(*v) || is_template_scalar(cx, *v);
        if schema.lists.contains(&key) && tree.as_seq(*v).is_none() && !accept {
            cx.wrong_type(*v, &field(path, key), "a list");
        }
        if let Some((_, inner)) = schema.maps.iter().find(|(m, _)| *m == key) {
            if tree.as_map(*v).is_none() {
                if !accept {
                    cx.wrong_type(*v, &field(path, key), "a mapping");
                }
            } else {
                for r in *inner {
                    cx.required(
                        *v,
                        r,
                        &field(path, key),
                        &format!("`{key}` of {what}"),
                        tree.span(*k),
                        "",
                    );
                }
            }
        }
    }
    for r in schema.required {
        cx.required(map, r, path, what, anchor, "");
    }
    if !schema.one_of.is_empty() && !schema.one_of.iter().any(|k| tree.get(map, k).is_some()) {
        let keys: Vec<String> = schema.one_of.iter().map(|k| format!("`{k}`")).collect();
        cx.rep.emit(
            Diagnostic::error(
                Code::MissingKey,
                format!("{what} needs one of {}", keys.join(" or ")),
            )
            .with_path(path),
            anchor,
        );
    }
}
